package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHabitsTable: every `roro …` in the README's habits table parses as a command with
// flags it has, so the table cannot drift from the commands that exist.
func TestHabitsTable(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	start, end := strings.Index(s, "<!-- habits:"), strings.Index(s, "<!-- /habits -->")
	if start < 0 || end < start {
		t.Fatal("no habits table in the README")
	}
	calls := regexp.MustCompile("`(roro[^`]*)`").FindAllStringSubmatch(s[start:end], -1)
	if len(calls) < 20 {
		t.Fatalf("only %d roro calls in the table", len(calls))
	}
	root := newRootCommand(&options{stdout: os.Stdout, stderr: os.Stderr})
	// What cobra adds when it runs: --version, and the completion command.
	root.InitDefaultVersionFlag()
	root.InitDefaultCompletionCmd()
	for _, c := range calls {
		args := strings.Fields(c[1])[1:]
		cmd, rest, err := root.Find(args)
		if err != nil {
			t.Errorf("%s: %v", c[1], err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("%s: %v", c[1], err)
		}
	}
}

// TestEveryCommandHasAnExample: --help teaches by example, for every command.
func TestEveryCommandHasAnExample(t *testing.T) {
	root := newRootCommand(&options{stdout: os.Stdout, stderr: os.Stderr})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" && c.Runnable() {
			t.Errorf("%s has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
