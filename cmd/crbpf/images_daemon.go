package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/crbpf/crbpf/image"
	"github.com/spf13/cobra"
)

// listedImage is one line of `images ls`.
type listedImage struct {
	CRID     uint64 `json:"crid"`
	PID      int    `json:"pid"`
	Comm     string `json:"comm"`
	Bytes    uint64 `json:"bytes"`
	Created  string `json:"created"`
	InMemory bool   `json:"in_memory"`
	Path     string `json:"path,omitempty"`
	Owner    *int   `json:"owner_uid,omitempty"`
	Parent   uint64 `json:"parent_crid,omitempty"` // incremental: the image it builds on
}

func newImagesLsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls [--json] [DIR...]",
		Short: "List in-memory images (from the daemon) and the images in DIRs",
		Long: `Lists the images the daemon keeps in memory (those you may use: all of them
for root) and the image directories found directly in each DIR (default: the
current directory), by crid.`,
		Example: `  crbpf images ls
  crbpf images ls --json /var/lib/images`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out []listedImage
			dc, err := g.daemonClient(false)
			if err != nil {
				return err
			}
			if dc != nil {
				defer dc.Close()
				ims, err := dc.List()
				if err != nil {
					return daemonErr(err)
				}
				for _, im := range ims {
					owner := im.Owner
					out = append(out, listedImage{CRID: im.CRID, PID: im.PID, Comm: im.Comm, Bytes: im.Bytes,
						Created: im.Created, InMemory: true, Owner: &owner, Parent: im.Parent})
				}
			}
			if len(args) == 0 {
				args = []string{"."}
			}
			for _, d := range args {
				ents, err := os.ReadDir(d)
				if err != nil {
					return err
				}
				for _, e := range ents {
					p := filepath.Join(d, e.Name())
					if !e.IsDir() {
						continue
					}
					if _, err := os.Stat(filepath.Join(p, image.MetaFile)); err != nil {
						continue
					}
					img, err := image.Load(p)
					if err != nil {
						g.progress("warning: %s: %v", p, err)
						continue
					}
					var bytes int64
					if fi, err := os.Stat(filepath.Join(p, image.PagesFile)); err == nil {
						bytes = fi.Size()
					}
					abs, _ := filepath.Abs(p)
					out = append(out, listedImage{CRID: img.Header.CRID, PID: img.Header.PID, Comm: img.Header.Comm,
						Bytes: uint64(bytes), Created: img.Header.Time.UTC().Format("2006-01-02T15:04:05Z"), Path: abs,
						Parent: parentOf(img)})
				}
			}
			if asJSON {
				if out == nil {
					out = []listedImage{}
				}
				return g.printJSON(out)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "CRID\tPARENT\tPID\tCOMM\tBYTES\tCREATED\tWHERE")
			for _, im := range out {
				where := im.Path
				if im.InMemory {
					where = "memory"
				}
				parent := "-"
				if im.Parent != 0 {
					parent = strconv.FormatUint(im.Parent, 10)
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%s\t%s\n", im.CRID, parent, im.PID, im.Comm, im.Bytes, im.Created, where)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func newImagesSaveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "save CRID DIR",
		Short:   "Write an in-memory image to a directory",
		Long:    "Copies the image the daemon keeps in memory as CRID to DIR, which must not exist.",
		Example: "  crbpf images save 42 ./crbpf-42",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			crid, ok := cridArg(args[0])
			if !ok {
				return usageErr("CRID must be a positive number, got %q", args[0])
			}
			dir, err := filepath.Abs(args[1])
			if err != nil {
				return err
			}
			dc, err := g.daemonClient(true)
			if err != nil {
				return err
			}
			defer dc.Close()
			if err := dc.Save(crid, dir); err != nil {
				return daemonErr(err)
			}
			fmt.Fprintf(g.stdout, "crid %d saved to %s\n", crid, dir)
			return nil
		},
	}
}

func newImagesDropCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "drop CRID",
		Short:   "Remove an in-memory image from the daemon",
		Example: "  crbpf images drop 42",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			crid, ok := cridArg(args[0])
			if !ok {
				return usageErr("CRID must be a positive number, got %q", args[0])
			}
			dc, err := g.daemonClient(true)
			if err != nil {
				return err
			}
			defer dc.Close()
			if err := dc.Drop(crid); err != nil {
				return daemonErr(err)
			}
			return nil
		},
	}
}

// parentOf is the crid of the image img inherits pages from, 0 if none.
func parentOf(img *image.Image) uint64 {
	for _, v := range img.VMAs {
		if len(v.Inherit) > 0 {
			return img.Header.ParentCRID
		}
	}
	return 0
}
