package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/image"
	"github.com/spf13/cobra"
)

func newImagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List, inspect, verify, save and drop checkpoint images",
		Example: `  crbpf images show ./crbpf-42
  crbpf images verify ./crbpf-42
  crbpf images squash -o ./full-42 ./crbpf-42`,
	}
	cmd.AddCommand(newImagesShowCmd(g), newImagesVerifyCmd(g), newImagesSquashCmd(g), newImagesLsCmd(g), newImagesSaveCmd(g), newImagesDropCmd(g))
	return cmd
}

type vmaSummary struct {
	Start string `json:"start"`
	End   string `json:"end"`
	Prot  string `json:"prot"`
	Kind  string `json:"kind"`
	Name  string `json:"name,omitempty"`
	Pages uint64 `json:"pages_stored"`
	// Inherited pages come from the parent image, Zero pages of a private
	// file mapping are zero (not the file's content).
	Inherited uint64 `json:"pages_inherited,omitempty"`
	Zero      uint64 `json:"pages_zero,omitempty"`
	Offset    uint64 `json:"offset,omitempty"`
}

// chainLink is one image of a chain in `images show`.
type chainLink struct {
	CRID      uint64 `json:"crid"`
	Dir       string `json:"dir,omitempty"`
	Time      string `json:"time,omitempty"`
	Stored    uint64 `json:"pages_stored"`
	Inherited uint64 `json:"pages_inherited"`
	Error     string `json:"error,omitempty"` // the link is missing or damaged
}

type imageSummary struct {
	Dir         string         `json:"dir"`
	Version     int            `json:"format_version"`
	Header      image.Header   `json:"header"`
	MM          image.MM       `json:"mm"`
	VMAs        []vmaSummary   `json:"vmas"`
	Files       []image.File   `json:"files"`
	Stats       image.Stats    `json:"stats"`
	PagesStored uint64         `json:"pages_stored"`
	BytesStored uint64         `json:"bytes_stored"`
	Inherited   uint64         `json:"pages_inherited"`
	Chain       []chainLink    `json:"chain"` // this image first, then its ancestors
	Task        map[string]any `json:"task"`
}

func protString(p uint32) string {
	b := []byte("---")
	if p&1 != 0 {
		b[0] = 'r'
	}
	if p&2 != 0 {
		b[1] = 'w'
	}
	if p&4 != 0 {
		b[2] = 'x'
	}
	return string(b)
}

func summarize(dir string, img *image.Image) imageSummary {
	s := imageSummary{Dir: dir, Version: image.FormatVersion, Header: img.Header, MM: img.MM, Files: img.Files, Stats: img.Stats}
	for _, v := range img.VMAs {
		vs := vmaSummary{Start: fmt.Sprintf("%#x", v.Start), End: fmt.Sprintf("%#x", v.End),
			Prot: protString(v.Prot), Kind: v.Kind, Name: v.Name, Offset: v.Offset}
		for _, r := range v.Pages {
			vs.Pages += r.NPages
		}
		for _, z := range v.Zero {
			vs.Zero += z.NPages
		}
		for _, i := range v.Inherit {
			vs.Inherited += i.NPages
		}
		s.PagesStored += vs.Pages
		s.Inherited += vs.Inherited
		s.VMAs = append(s.VMAs, vs)
	}
	s.BytesStored = s.PagesStored * image.PageSize
	t := img.Task
	s.Task = map[string]any{"tid": t.TID, "comm": t.Comm, "cwd": t.Cwd, "sigmask": fmt.Sprintf("%#x", t.SigMask),
		"signal_handlers": len(t.SigActions), "pending_signals": len(t.Pending) + len(t.SharedPend),
		"rseq": t.Rseq != nil, "itimers": len(t.ITimers), "posix_timers": len(t.PosixTimers)}
	return s
}

func newImagesShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [--json] IMG",
		Short: "Show what an image holds",
		Long: `Prints the image header (crid, parent crid, pid, time, kernel, arch, crbpf
version), the saved mappings with the number of pages stored for each, the
open files and how the checkpoint went. It checks the metadata checksum but
not the pages (see "images verify").`,
		Example: `  crbpf images show ./crbpf-42
  crbpf images show --json ./crbpf-42 | jq .header.crid`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := image.Load(args[0])
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(args[0])
			s := summarize(abs, img)
			s.Chain = chainOf(abs)
			if asJSON {
				return g.printJSON(s)
			}
			h := img.Header
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "image\t%s (format %d)\n", abs, image.FormatVersion)
			fmt.Fprintf(w, "crid\t%d\n", h.CRID)
			fmt.Fprintf(w, "parent crid\t%d\n", h.ParentCRID)
			fmt.Fprintf(w, "pid\t%d (%s)\n", h.PID, h.Comm)
			fmt.Fprintf(w, "command\t%s\n", strings.Join(h.Cmdline, " "))
			fmt.Fprintf(w, "taken\t%s\n", h.Time.Format(time.RFC3339Nano))
			fmt.Fprintf(w, "kernel\t%s %s\n", h.KernelRelease, h.Arch)
			fmt.Fprintf(w, "crbpf\t%s\n", h.CrbpfVersion)
			fmt.Fprintf(w, "frozen\t%.3f ms\n", float64(img.Stats.FreezeNanos)/1e6)
			fmt.Fprintf(w, "stored\t%d pages, %d bytes\n", s.PagesStored, s.BytesStored)
			if h.ParentCRID != 0 {
				fmt.Fprintf(w, "inherited\t%d pages from the parent\n", s.Inherited)
			}
			w.Flush()
			if len(s.Chain) > 1 || h.ParentCRID != 0 {
				fmt.Fprintln(g.stdout, "\nchain (restart reads each page from the newest image that has it):")
				for i, l := range s.Chain {
					indent := strings.Repeat("   ", i)
					mark := "  "
					if i > 0 {
						mark = "└─"
					}
					if l.Error != "" {
						fmt.Fprintf(g.stdout, "  %s%s crid %d  BROKEN: %s\n", indent, mark, l.CRID, l.Error)
						continue
					}
					what := fmt.Sprintf("%d pages stored", l.Stored)
					if l.Inherited > 0 {
						what += fmt.Sprintf(", %d inherited", l.Inherited)
					}
					if i == len(s.Chain)-1 {
						what += ", self-contained"
					}
					fmt.Fprintf(g.stdout, "  %s%s crid %d  %s  (%s; %s)\n", indent, mark, l.CRID, l.Dir, what, l.Time)
				}
			}
			fmt.Fprintln(g.stdout, "\nmappings:")
			w = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "  START\tEND\tPROT\tKIND\tSTORED\tINHERITED\tZERO\tNAME")
			for _, v := range s.VMAs {
				fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", v.Start, v.End, v.Prot, v.Kind, v.Pages, v.Inherited, v.Zero, v.Name)
			}
			w.Flush()
			fmt.Fprintln(g.stdout, "\nfiles:")
			w = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "  FD\tKIND\tFLAGS\tPOS\tPATH")
			for _, f := range img.Files {
				fmt.Fprintf(w, "  %d\t%s\t%#o\t%d\t%s\n", f.FD, f.Kind, f.Flags, f.Pos, f.Path)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newImagesVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify IMG",
		Short: "Check an image's integrity",
		Long: `Checks the metadata checksum and structure and the CRC-32C of every stored
page. For an incremental image it checks the whole chain it needs: every
ancestor is there, carries the crid its child names, and every page restart
would read from it is intact. Exits 0 when the image is intact, 7 naming the
first bad part (and the crid of a bad ancestor) otherwise.`,
		Example: `  crbpf images verify ./crbpf-42`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := image.Load(args[0])
			if err != nil {
				return err
			}
			if err := image.Verify(args[0], img); err != nil {
				return err
			}
			ch, err := chain.Load(args[0], chain.OnDisk)
			if err != nil {
				return err
			}
			res, err := ch.Resolve()
			if err != nil {
				return err
			}
			if err := ch.Verify(res); err != nil {
				return err
			}
			msg := fmt.Sprintf("%d pages verified", img.TotalPages())
			if n := len(ch.Links); n > 1 {
				msg = fmt.Sprintf("%d pages verified; chain of %d images %v, %d pages in use verified", img.TotalPages(), n, ch.CRIDs(), res.TotalPages())
			}
			fmt.Fprintf(g.stdout, "%s: ok (crid %d, %s)\n", args[0], img.Header.CRID, msg)
			return nil
		},
	}
}

// chainOf describes the chain of the image in dir, as far as it can be
// loaded: the link that cannot is the last, with its error.
func chainOf(dir string) []chainLink {
	var out []chainLink
	add := func(l chain.Link) {
		cl := chainLink{CRID: l.Image.Header.CRID, Dir: l.Dir, Time: l.Image.Header.Time.Format(time.RFC3339)}
		for _, v := range l.Image.VMAs {
			for _, r := range v.Pages {
				cl.Stored += r.NPages
			}
			for _, s := range v.Inherit {
				cl.Inherited += s.NPages
			}
		}
		out = append(out, cl)
	}
	ch, err := chain.Load(dir, func(crid uint64, child chain.Link) (string, error) {
		add(child)
		return chain.OnDisk(crid, child)
	})
	if err == nil {
		add(ch.Links[len(ch.Links)-1])
		return out
	}
	var be *chain.BrokenError
	if errors.As(err, &be) {
		out = append(out, chainLink{CRID: be.CRID, Dir: be.Dir, Error: be.Err.Error()})
	}
	return out
}

func newImagesSquashCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "squash -o OUT IMG",
		Short: "Merge an incremental image and its ancestors into one image",
		Long: `Writes the image IMG as one self-contained image at OUT: same crid and task
state, every page's data copied from the newest image of the chain that has
it (each page's CRC-32C is checked on the way), no parent. The chain is left
as it is; OUT can be restarted, moved or copied on its own.`,
		Example: `  crbpf images squash -o ./full-42 ./crbpf-42`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErr("squash needs -o OUT, the new image's directory")
			}
			ch, err := chain.Load(args[0], chain.OnDisk)
			if err != nil {
				return err
			}
			img, err := chain.Squash(ch, out)
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(out)
			fmt.Fprintf(g.stdout, "crid %d: squashed %d images %v into %s (%d pages stored)\n",
				img.Header.CRID, len(ch.Links), ch.CRIDs(), abs, img.TotalPages())
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "directory of the self-contained image to create")
	return cmd
}
