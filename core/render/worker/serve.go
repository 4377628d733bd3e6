package worker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"

	"encoding/gob"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/internal/raceflag"
)

// envVar marks a process started as a render worker; its value is the memory bound in bytes.
const envVar = "RORO_RENDER_WORKER"

// maxStack bounds a worker goroutine's stack. Legitimate templates nest shallowly; a
// partial, macro or include that calls itself hits this long before the memory bound,
// and the worker dies saying "stack exceeds", which the pool reports as too deep.
const maxStack = 64 << 20

// init turns the process into a render worker when it was started as one, before main
// (or a test binary's tests) runs: any binary that imports this package can serve as its
// own worker, so the pool needs no separate executable.
func init() {
	v, ok := os.LookupEnv(envVar)
	if !ok {
		return
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil || limit <= 0 {
		fmt.Fprintf(os.Stderr, "roro render worker: %s=%q is not a memory bound in bytes\n", envVar, v)
		os.Exit(2)
	}
	os.Exit(serve(os.Stdin, os.Stdout, limit))
}

// serve bounds the process to limit bytes of memory, then runs requests from in one after
// another until in ends, answering on out.
func serve(in io.Reader, out io.Writer, limit int64) int {
	hard := limit
	if raceflag.Enabled {
		// A test binary built with -race: ThreadSanitizer's shadow memory counts against the
		// hard bound and does not fit under 512 MiB. Tests of the bound itself skip under
		// -race; the others get room (roro is never shipped with -race).
		hard *= 8
	}
	if err := limitMemory(hard); err != nil {
		fmt.Fprintf(os.Stderr, "roro render worker: %v\n", err)
		return 2
	}
	// Let the collector work hard before the hard bound ends the process.
	debug.SetMemoryLimit(limit * 3 / 4)
	debug.SetGCPercent(400)
	debug.SetMaxStack(maxStack)
	dec := gob.NewDecoder(in)
	enc := gob.NewEncoder(out)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintf(os.Stderr, "roro render worker: read request: %v\n", err)
			return 2
		}
		if err := enc.Encode(run(req, enc)); err != nil {
			fmt.Fprintf(os.Stderr, "roro render worker: write result: %v\n", err)
			return 2
		}
	}
}

// run executes one request, reporting each file as it starts.
func run(req request, enc *gob.Encoder) (f frame) {
	f.Done = true
	defer func() {
		if r := recover(); r != nil {
			f.Rendered = nil
			f.Err = &wireError{Msg: fmt.Sprintf("the template engine failed: %v", r)}
		}
	}()
	started := func(file string) {
		// A lost progress frame only makes a later error less precise.
		_ = enc.Encode(frame{Started: file})
	}
	rendered, err := render.ExecuteDecode(req.Engine, req.Files, &req.Context, started)
	if err != nil {
		var te *render.TemplateError
		var oe *render.ObjectError
		switch {
		case errors.As(err, &te):
			f.Err = &wireError{File: te.File, Line: te.Line, Column: te.Column, Msg: te.Msg, Located: true}
		case errors.As(err, &oe):
			f.Err = &wireError{Object: oe}
		default:
			f.Err = &wireError{Msg: err.Error()}
		}
		return f
	}
	f.Rendered = rendered
	return f
}
