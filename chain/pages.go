package chain

import (
	"github.com/crbpf/crbpf/image"
)

// Pages is the CRC-32C and 64-bit hash of every page with data in a
// resolved chain: what an incremental checkpoint compares its pages with
// (it implements writer.Parent). It reads each link's hash file, never
// page data. Safe for concurrent use once built.
type Pages struct {
	runs   []image.PageRun // sorted by address
	hashes [][]uint64      // per link: image.ReadHashes
	n      uint64
}

// Pages builds the index of the resolved image res (from c.Resolve).
func (c *Chain) Pages(res *image.Image) (*Pages, error) {
	p := &Pages{hashes: make([][]uint64, len(c.Links))}
	used := make([]bool, len(c.Links))
	for _, v := range res.VMAs {
		for _, r := range v.Pages {
			p.runs = append(p.runs, r)
			used[r.Src] = true
			p.n += r.NPages
		}
	}
	for k, l := range c.Links {
		if !used[k] {
			continue
		}
		h, err := image.ReadHashes(l.Dir, l.Image)
		if err != nil {
			if k == 0 {
				return nil, err
			}
			return nil, &BrokenError{CRID: l.Image.Header.CRID, Child: c.Links[k-1].Image.Header.CRID, Dir: l.Dir, Err: trimDir(err, l.Dir)}
		}
		p.hashes[k] = h
	}
	return p, nil
}

// Len returns the number of pages with data.
func (p *Pages) Len() uint64 { return p.n }

// Same reports whether the chain has data at addr with this CRC and hash.
func (p *Pages) Same(addr uint64, crc uint32, hash uint64) bool {
	i, ok := runAt(p.runs, addr)
	if !ok {
		return false
	}
	r := &p.runs[i]
	k := (addr - r.Addr) / image.PageSize
	slot := r.DataOff/image.PageSize + k
	h := p.hashes[r.Src]
	return r.CRC[k] == crc && slot < uint64(len(h)) && h[slot] == hash
}
