package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/crbpf/crbpf/probe"
	"github.com/spf13/cobra"
)

func newCheckCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "List the kernel features crbpf uses and whether they work here",
		Long: `Probes each kernel feature crbpf uses (ptrace, clone3 set_tid, PR_SET_MM_MAP,
ARCH_MAP_VDSO_64, userfaultfd write-protect, PAGEMAP_SCAN, BPF with BTF, and the
page-fault and syscall tracepoints) and prints ok or missing for each, with the
commands that need it. Exits 4 when a feature a command requires is missing;
features that only reduce telemetry do not change the exit code.`,
		Example: `  crbpf check
  crbpf check --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			results := probe.All(cmd.Context())
			var missing []string
			for _, r := range results {
				if r.Status != probe.OK && r.Required && len(r.NeededBy) > 0 {
					missing = append(missing, r.Name)
				}
			}
			if asJSON {
				if err := g.printJSON(results); err != nil {
					return err
				}
			} else {
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "FEATURE\tSTATUS\tNEEDED BY\tDETAIL")
				for _, r := range results {
					need := strings.Join(r.NeededBy, ",")
					if need == "" {
						need = "-"
					} else if !r.Required {
						need += " (optional)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Title, r.Status, need, r.Detail)
				}
				w.Flush()
			}
			if len(missing) > 0 {
				return &exitError{code: exitPrivilege, err: fmt.Errorf("required features missing: %s", strings.Join(missing, ", "))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
