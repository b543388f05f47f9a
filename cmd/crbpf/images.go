package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crbpf/crbpf/image"
	"github.com/spf13/cobra"
)

func newImagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List, inspect, verify, save and drop checkpoint images",
		Example: `  crbpf images show ./crbpf-42
  crbpf images verify ./crbpf-42`,
	}
	cmd.AddCommand(newImagesShowCmd(g), newImagesVerifyCmd(g), newImagesLsCmd(g), newImagesSaveCmd(g), newImagesDropCmd(g))
	return cmd
}

type vmaSummary struct {
	Start  string `json:"start"`
	End    string `json:"end"`
	Prot   string `json:"prot"`
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"`
	Pages  uint64 `json:"pages_stored"`
	Offset uint64 `json:"offset,omitempty"`
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
		var n uint64
		for _, r := range v.Pages {
			n += r.NPages
		}
		s.PagesStored += n
		s.VMAs = append(s.VMAs, vmaSummary{Start: fmt.Sprintf("%#x", v.Start), End: fmt.Sprintf("%#x", v.End),
			Prot: protString(v.Prot), Kind: v.Kind, Name: v.Name, Pages: n, Offset: v.Offset})
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
			w.Flush()
			fmt.Fprintln(g.stdout, "\nmappings:")
			w = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "  START\tEND\tPROT\tKIND\tSTORED\tNAME")
			for _, v := range s.VMAs {
				fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%d\t%s\n", v.Start, v.End, v.Prot, v.Kind, v.Pages, v.Name)
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
page. Exits 0 when the image is intact, 7 naming the first bad part otherwise.`,
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
			fmt.Fprintf(g.stdout, "%s: ok (crid %d, %d pages verified)\n", args[0], img.Header.CRID, img.TotalPages())
			return nil
		},
	}
}
