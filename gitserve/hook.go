package gitserve

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rorokube/roro/core/workspace"
)

// hookEnv marks a process git started as Roro's pre-receive hook.
const hookEnv = "RORO_GIT_HOOK"

// init runs the pre-receive hook when git started this executable as one (the server
// writes a hook script that does so): any binary that imports this package can be its own
// hook, as the render worker is its own worker.
func init() {
	if os.Getenv(hookEnv) != "pre-receive" {
		return
	}
	os.Exit(preReceive(os.Stdin, os.Stderr))
}

// zeroID is git's "no object" (a ref created or deleted).
const zeroID = "0000000000000000000000000000000000000000"

// preReceive refuses a push whose new head of the checked-out branch does not load as a
// workspace: the tree is checked out into a scratch folder through a scratch index (the
// repository's own index and work tree are not touched) and loaded with the strict loader.
func preReceive(in io.Reader, out io.Writer) int {
	head, err := gitOutput("symbolic-ref", "-q", "HEAD")
	if err != nil {
		return 0 // a detached HEAD: no branch is the workspace, nothing to protect
	}
	head = strings.TrimSpace(head)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[2] != head || f[1] == zeroID {
			continue
		}
		if err := loadsAt(f[1]); err != nil {
			fmt.Fprintf(out, "roro: the pushed %s does not load as a workspace, so the push is refused:\n%s\n", strings.TrimPrefix(head, "refs/heads/"), err)
			return 1
		}
	}
	return 0
}

// loadsAt checks out commit rev into a scratch folder and loads it as a workspace.
func loadsAt(rev string) error {
	tmp, err := os.MkdirTemp("", "roro-push-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	index := filepath.Join(tmp, "index")
	tree := filepath.Join(tmp, "workspace") + string(filepath.Separator)
	env := append(os.Environ(), "GIT_INDEX_FILE="+index)
	for _, args := range [][]string{{"read-tree", rev}, {"checkout-index", "-a", "--prefix=" + tree}} {
		cmd := exec.Command("git", args...)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, bytes.TrimSpace(b))
		}
	}
	if _, err := workspace.Load(tree); err != nil {
		return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), tree, ""))
	}
	return nil
}

func gitOutput(args ...string) (string, error) {
	b, err := exec.Command("git", args...).Output()
	return string(b), err
}

// hookScript is the pre-receive hook that runs exe as Roro's hook.
func hookScript(exe string) string {
	return "#!/bin/sh\n" + hookEnv + "=pre-receive exec '" + strings.ReplaceAll(exe, "'", `'\''`) + "'\n"
}
