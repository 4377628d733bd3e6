package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/rorokube/roro/core/runtime"
)

// externalDiff writes each object up would change as YAML into live/ and rendered/ folders
// and runs the user's diff program on them, as kubectl does with KUBECTL_EXTERNAL_DIFF.
func externalDiff(ctx context.Context, opts *options, eng *runtime.Engine, app string, sel runtime.Selection, values map[string]any, program string) error {
	ds, err := eng.DiffObjects(ctx, app, sel, values)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "roro-diff-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	live, rendered := filepath.Join(tmp, "live"), filepath.Join(tmp, "rendered")
	for _, dir := range []string{live, rendered} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
	}
	for _, d := range ds {
		name := diffFileName(d.Name)
		if d.Live != "" {
			if err := os.WriteFile(filepath.Join(live, name), []byte(d.Live), 0o600); err != nil {
				return err
			}
		}
		if d.Rendered != "" {
			if err := os.WriteFile(filepath.Join(rendered, name), []byte(d.Rendered), 0o600); err != nil {
				return err
			}
		}
	}
	args := strings.Fields(program)
	cmd := exec.CommandContext(ctx, args[0], append(args[1:], live, rendered)...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = opts.stdout, opts.stderr, os.Stdin
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return errDifferences // diff's own "there are differences"
	case err != nil:
		return fmt.Errorf("KUBECTL_EXTERNAL_DIFF=%q: %w", program, err)
	case len(ds) > 0:
		return errDifferences
	}
	return nil
}

// diffFileName turns "Deployment ns/api (pruned by the next up)" into a file name.
func diffFileName(name string) string {
	name, _, _ = strings.Cut(name, " (")
	return strings.NewReplacer("/", ".", " ", ".").Replace(name) + ".yaml"
}

// colour reports whether w is a terminal that may get colour (NO_COLOR unset).
func colour(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && os.Getenv("NO_COLOR") == "" && term.IsTerminal(int(f.Fd()))
}

// colourDiff colours a unified diff's added, removed and hunk lines.
func colourDiff(d string) string {
	lines := strings.SplitAfter(d, "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
			lines[i] = "\x1b[1m" + strings.TrimSuffix(l, "\n") + "\x1b[0m" + suffixNL(l)
		case strings.HasPrefix(l, "+"):
			lines[i] = "\x1b[32m" + strings.TrimSuffix(l, "\n") + "\x1b[0m" + suffixNL(l)
		case strings.HasPrefix(l, "-"):
			lines[i] = "\x1b[31m" + strings.TrimSuffix(l, "\n") + "\x1b[0m" + suffixNL(l)
		case strings.HasPrefix(l, "@@"):
			lines[i] = "\x1b[36m" + strings.TrimSuffix(l, "\n") + "\x1b[0m" + suffixNL(l)
		}
	}
	return strings.Join(lines, "")
}

func suffixNL(l string) string {
	if strings.HasSuffix(l, "\n") {
		return "\n"
	}
	return ""
}
