// Package chain resolves incremental images: an image whose header names a
// parent (Header.ParentCRID) stores only the pages that changed since that
// parent, and lists the pages it takes from it (VMA.Inherit). A chain is
// the image asked for (the tip, Links[0]) followed by its ancestors down to
// a self-contained root.
//
// Load finds each ancestor through a Locator (on disk by the child's
// Header.Parent hint, or in a daemon's memory by crid), loads it with
// image.Load and checks that it carries the crid its child names, so a
// missing, replaced, truncated or altered ancestor is an error naming its
// crid before anything is restored. Resolve turns the chain into one image
// whose page runs point into the pages files of the links (PageRun.Src),
// so that every page is read from the newest image that has it; Verify
// checks the CRC of every page a resolved image uses. Pages builds the
// per-page CRC and hash index of a chain that an incremental checkpoint
// compares against (writer.Parent). Squash writes a resolved chain as one
// self-contained image; Fold does the same for a tip and its self-contained
// parent cheaply, by reusing the parent's pages file.
//
// Nothing here holds files open between calls: a Chain is plain data.
package chain
