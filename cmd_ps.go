package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/yaml"

	"github.com/rorokube/roro/core/runtime"
)

// psRow is one line of `roro ps`: an instance as the cluster shows it, and the forwards the
// roro processes on this machine run for it.
type psRow struct {
	runtime.InstanceStatus
	Forwards []psForward `json:"forwards"`
}

// psForward is one forward of an instance, as the process that runs it published it.
type psForward struct {
	runtime.BoardForward
	PID     int    `json:"pid"`
	Command string `json:"command"`
}

func newPsCommand(opts *options) *cobra.Command {
	return &cobra.Command{
		Use: "ps",
		Example: `  roro ps
  roro ps -o wide     adds the forwarded ports and how each forward stands
  roro ps -o yaml`,
		Short: "List every running instance of the workspace's apps, with its health",
		Long: `List the instances running in the clusters of the workspace's environments, read from the
clusters' labels (not only the local cache), with health from kstatus: healthy, progressing
or failed, what is not ready yet, and the instance's age (since its first up).

-o wide adds the ports forwarded to each instance and how each forward stands (connected to
which pod, reconnecting and why), with the roro that runs it (the window, roro forward,
roro run, on this machine). Forwards are shown only while a roro process runs them.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEngine(opts, func(eng *runtime.Engine) error {
				list, err := eng.Ps(cmd.Context())
				rows, berr := psRows(eng, list)
				if berr != nil {
					fmt.Fprintf(opts.stderr, "the forwards are not shown: %v\n", berr)
				}
				switch opts.output {
				case "json", "yaml":
					if werr := writeRows(opts, rows); werr != nil {
						return werr
					}
					return err
				}
				if len(list) == 0 && err != nil {
					return err // nothing observed: no table, only why
				}
				if len(list) == 0 {
					fmt.Fprintln(opts.stdout, "nothing is running; start with `roro up`")
					return err
				}
				p := printers.NewTablePrinter(printers.PrintOptions{Wide: opts.output == "wide"})
				if perr := p.PrintObj(psTable(rows, time.Now()), opts.stdout); perr != nil {
					return perr
				}
				for _, s := range list {
					for _, n := range s.NotReady {
						fmt.Fprintf(opts.stdout, "  %s/%s: %s\n", s.App, s.Instance, n)
					}
				}
				return err
			})
		},
	}
}

// psRows pairs each instance with the forwards the roro processes of this machine publish
// for it.
func psRows(eng *runtime.Engine, list []runtime.InstanceStatus) ([]psRow, error) {
	rows := make([]psRow, 0, len(list))
	for _, s := range list {
		rows = append(rows, psRow{InstanceStatus: s, Forwards: []psForward{}})
	}
	stateDir, err := runtime.StateDir()
	if err != nil {
		return rows, err
	}
	boards, err := runtime.ReadBoards(runtime.BoardDir(stateDir), eng.Workspace().Dir)
	if err != nil {
		return rows, err
	}
	for i := range rows {
		for _, b := range boards {
			for _, f := range b.Forwards {
				if f.App == rows[i].App && f.Instance == rows[i].Instance {
					rows[i].Forwards = append(rows[i].Forwards, psForward{BoardForward: f, PID: b.PID, Command: b.Command})
				}
			}
		}
	}
	return rows, nil
}

func writeRows(opts *options, rows []psRow) error {
	if opts.output == "json" {
		return writeJSON(opts.stdout, rows)
	}
	b, err := yaml.Marshal(rows)
	if err == nil {
		_, err = opts.stdout.Write(b)
	}
	return err
}

// psTable is ps as a Kubernetes table, for cli-runtime's printer: the columns kubectl would
// print, the wide ones at priority 1.
func psTable(rows []psRow, now time.Time) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "App", Type: "string"},
		{Name: "Instance", Type: "string"},
		{Name: "Environment", Type: "string"},
		{Name: "Namespace", Type: "string"},
		{Name: "Health", Type: "string"},
		{Name: "Ready", Type: "string"},
		{Name: "Age", Type: "string"},
		{Name: "Ports", Type: "string", Priority: 1},
		{Name: "Forwards", Type: "string", Priority: 1},
	}}
	for _, r := range rows {
		age := "<unknown>"
		if !r.Created.IsZero() {
			age = duration.HumanDuration(now.Sub(r.Created))
		}
		ports, states := forwardCells(r.Forwards)
		t.Rows = append(t.Rows, metav1.TableRow{Cells: []any{
			r.App, r.Instance, orDash(r.Environment), r.Namespace, string(r.Health),
			fmt.Sprintf("%d/%d", r.Ready, r.Objects), age, ports, states,
		}})
	}
	return t
}

// forwardCells writes an instance's forwards as two cells: the bound ports
// ("127.0.0.1:8080->80") and each forward's state with the roro that runs it.
func forwardCells(fws []psForward) (string, string) {
	if len(fws) == 0 {
		return "-", "not forwarded"
	}
	var ports, states []string
	for _, f := range fws {
		by := fmt.Sprintf("(%s, pid %d)", f.Command, f.PID)
		if f.Err != "" {
			states = append(states, "not running: "+f.Err+" "+by)
			continue
		}
		for _, p := range f.Ports {
			remote := p.Remote
			if p.Resolved != 0 {
				remote = fmt.Sprint(p.Resolved)
			}
			ports = append(ports, fmt.Sprintf("%s:%d->%s", f.Address, p.Local, remote))
		}
		st := f.Target + " " + string(f.State)
		switch {
		case f.State == "connected" && f.Pod != "":
			st += " to " + f.Pod
		case f.Reason != "":
			st += ": " + f.Reason
		}
		states = append(states, st+" "+by)
	}
	return orDash(strings.Join(ports, ",")), strings.Join(states, "; ")
}
