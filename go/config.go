package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
)

const (
	// maxIndexDepth bounds how many nested indexes are followed, so a
	// registry cannot keep a call walking in circles.
	maxIndexDepth = 4
	// maxConfigSize is the largest image config read, whatever its
	// descriptor claims. Real configs are a few KiB; large ones carry long
	// histories and stay far below this.
	maxConfigSize = 16 << 20
)

// imageInfo is the metadata returned beside the config bytes.
type imageInfo struct {
	Reference      string   `json:"reference"`
	Registry       string   `json:"registry"`
	Digest         string   `json:"digest"`
	ManifestDigest string   `json:"manifest_digest"`
	ConfigDigest   string   `json:"config_digest"`
	MediaType      string   `json:"media_type"`
	Platform       string   `json:"platform"`
	Platforms      []string `json:"platforms"`
}

type configResult struct {
	info   imageInfo
	config []byte
}

// fetchImageConfig resolves an image reference to one platform's manifest
// and returns its config blob exactly as stored. It fills info as it learns
// the reference and the registry, so errors can name them.
func fetchImageConfig(ctx context.Context, c *Client, req request, info *errorContext) (*configResult, error) {
	rc := c.rc
	r, err := parseRef(req.Image)
	if err != nil {
		return nil, err
	}
	info.Reference, info.Registry = r.CommonName(), registryName(r)
	if r.Scheme == "reg" {
		if err := c.policy.checkRegistry(r.Registry); err != nil {
			return nil, err
		}
	} else if c.policy != nil && (len(c.policy.allowed) > 0 || c.policy.blockPrivate) {
		return nil, policyError("ocidir references read local files, which the network policy does not allow")
	}
	if r.Scheme == "ocidir" {
		if err := requireRegularFiles(r.Path, "oci-layout", "index.json"); err != nil {
			return nil, err
		}
	}
	defer func() { _ = rc.Close(context.Background(), r) }()

	plat, explicit, err := requestedPlatform(req.Platform)
	if err != nil {
		return nil, err
	}

	m, err := c.getManifest(ctx, r, nil)
	if err != nil {
		return nil, err
	}
	res := &configResult{info: imageInfo{
		Reference: r.CommonName(),
		Registry:  registryName(r),
		Digest:    m.GetDescriptor().Digest.String(),
		Platforms: []string{},
	}}

	// Walk down indexes to the manifest for the requested platform.
	for depth := 0; m.IsList(); depth++ {
		if depth == maxIndexDepth {
			return nil, fmt.Errorf("indexes nested more than %d deep%.0w", maxIndexDepth, errs.ErrUnsupportedMediaType)
		}
		entries, err := imageEntries(m)
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			// Indexes of signatures, SBOMs and other artifacts list manifests without a platform.
			return nil, unsupportedMediaType(fmt.Errorf("index %s has no image for any platform%s, so it is not an image index", m.GetDescriptor().Digest, artifactTypeNote(m)))
		}
		platforms := platformNames(entries)
		if depth == 0 {
			res.info.Platforms = platforms
		}
		if explicit {
			// regclient lets a darwin or windows host run linux images, as
			// Docker Desktop does. That fallback serves the default only: a
			// requested OS must match.
			entries = slices.DeleteFunc(entries, func(d descriptor.Descriptor) bool { return d.Platform.OS != plat.OS })
		}
		d, err := descriptor.DescriptorListSearch(entries, descriptor.MatchOpt{Platform: &plat})
		if err != nil {
			info.Platforms = platforms
			return nil, &kindError{kind: kindPlatformNotFound, err: fmt.Errorf("platform %s not found in %s", shownPlatform(plat, req.Platform), r.CommonName())}
		}
		r = r.SetDigest(d.Digest.String())
		m, err = c.getManifest(ctx, r, &d)
		if err != nil {
			return nil, fmt.Errorf("failed to get manifest for platform %s: %w", plat, err)
		}
	}

	imager, ok := m.(manifest.Imager)
	if !ok {
		return nil, unsupportedMediaType(fmt.Errorf("manifest media type %s is not an image", m.GetDescriptor().MediaType))
	}
	cd, err := imager.GetConfig()
	if err != nil {
		return nil, unsupportedMediaType(fmt.Errorf("manifest %s has no config: %w", m.GetDescriptor().MediaType, err))
	}
	if cd.MediaType != mediatype.OCI1ImageConfig && cd.MediaType != mediatype.Docker2ImageConfig {
		return nil, unsupportedMediaType(fmt.Errorf("config media type %s is not an image config, the manifest is probably an artifact", cd.MediaType))
	}

	if err := requireImageLayers(imager); err != nil {
		return nil, err
	}

	body, configPlat := c.cache.getConfig(cd.Digest.String())
	if body == nil {
		if err := requireLayoutBlob(r, cd.Digest.String()); err != nil {
			return nil, err
		}
		body, err = readBlob(ctx, rc, r, cd)
		if err != nil {
			return nil, err
		}
		configPlat, err = configPlatform(body)
		if err != nil {
			return nil, err
		}
		c.cache.putConfig(cd.Digest.String(), body, configPlat)
	}
	if explicit && len(res.info.Platforms) == 0 && (plat.OS != configPlat.OS || !platform.Compatible(plat, configPlat)) {
		info.Platforms = []string{configPlat.String()}
		return nil, &kindError{kind: kindPlatformNotFound, err: fmt.Errorf("platform %s not found: %s is a single-platform image for %s", shownPlatform(plat, req.Platform), r.CommonName(), configPlat)}
	}

	res.info.ManifestDigest = m.GetDescriptor().Digest.String()
	res.info.MediaType = m.GetDescriptor().MediaType
	res.info.ConfigDigest = cd.Digest.String()
	res.info.Platform = configPlat.String()
	res.config = body
	return res, nil
}

// maxParsedRefs bounds the memo of parsed references, which is emptied
// when full.
const maxParsedRefs = 1024

var (
	parsedRefsMu sync.Mutex
	parsedRefs   = map[string]ref.Ref{}
)

// parseRef parses an image reference, remembering references that parsed,
// because regclient's parser runs several regular expressions and a
// backend looks up the same few images again and again. ref.Ref holds only
// strings, so a copy is safe to hand out.
func parseRef(image string) (ref.Ref, error) {
	parsedRefsMu.Lock()
	r, ok := parsedRefs[image]
	parsedRefsMu.Unlock()
	if ok {
		return r, nil
	}
	r, err := ref.New(image)
	if err != nil {
		return r, err
	}
	parsedRefsMu.Lock()
	if len(parsedRefs) >= maxParsedRefs {
		clear(parsedRefs)
	}
	parsedRefs[image] = r
	parsedRefsMu.Unlock()
	return r, nil
}

// parseReference returns the parsed reference, its registry and scheme.
func parseReference(image string) (any, error) {
	r, err := ref.New(image)
	if err != nil {
		return nil, err
	}
	return map[string]string{"reference": r.CommonName(), "registry": registryName(r), "scheme": r.Scheme}, nil
}

// getManifest returns the manifest r names. A manifest addressed by digest
// comes from the cache when it is there. A tag seen before is revalidated
// with one HEAD request, whose digest then usually hits the cache; a new
// tag is fetched with one GET.
func (c *Client) getManifest(ctx context.Context, r ref.Ref, desc *descriptor.Descriptor) (manifest.Manifest, error) {
	if r.Digest != "" {
		if m := c.cache.getManifest(r.Digest); m != nil {
			return m, nil
		}
		if err := requireLayoutBlob(r, r.Digest); err != nil {
			return nil, err
		}
		opts := []regclient.ManifestOpts{}
		if desc != nil {
			opts = append(opts, regclient.WithManifestDesc(*desc))
		}
		m, err := c.rc.ManifestGet(ctx, r, opts...)
		if err != nil {
			return nil, err
		}
		c.cache.putManifest(m)
		return m, nil
	}

	tag := r.CommonName()
	if c.cache.tagSeen(tag) {
		head, err := c.rc.ManifestHead(ctx, r)
		if errors.Is(err, errs.ErrNotFound) {
			return nil, err
		}
		// Other HEAD failures (some registries reject HEAD) fall back to GET.
		if err == nil && head.GetDescriptor().Digest != "" {
			return c.getManifest(ctx, r.SetDigest(head.GetDescriptor().Digest.String()), nil)
		}
	}
	m, err := c.rc.ManifestGet(ctx, r)
	if err != nil {
		return nil, err
	}
	c.cache.addTag(tag)
	c.cache.putManifest(m)
	return m, nil
}

// shownPlatform returns the platform as an error message names it. For
// amd64 it leaves out the variant unless the caller gave one, because
// regclient adds the host's CPU level ("v4") to platforms given without one.
func shownPlatform(plat platform.Platform, requested string) string {
	if plat.Architecture == "amd64" && platformComponents(requested) < 3 {
		plat.Variant = ""
	}
	return plat.String()
}

// platformComponents counts the slash-separated components of a platform
// string before its options: 3 for "linux/arm/v7,osver=1".
func platformComponents(s string) int {
	return strings.Count(strings.SplitN(s, ",", 2)[0], "/") + 1
}

// requestedPlatform parses the platform string; empty means the host's.
func requestedPlatform(s string) (platform.Platform, bool, error) {
	if s == "" || s == "local" {
		return platform.Local(), false, nil
	}
	// regclient ignores components past the variant; a typo must not pass.
	if platformComponents(s) > 3 {
		return platform.Platform{}, true, &kindError{kind: kindInvalidPlatform, err: fmt.Errorf("invalid platform %q: more than os/arch/variant", s)}
	}
	p, err := platform.Parse(s)
	if err != nil {
		// regclient's message repeats the value unquoted; this one names it once.
		return p, true, &kindError{kind: kindInvalidPlatform, err: fmt.Errorf("invalid platform %q: expected os/arch[/variant][,osver=X], each part letters, digits, '_' or '-'", s)}
	}
	return p, true, nil
}

// imageEntries returns an index's entries that can be images: entries
// without a platform, and attestation entries (unknown/unknown), are left
// out so they are never chosen.
func imageEntries(m manifest.Manifest) ([]descriptor.Descriptor, error) {
	indexer, ok := m.(manifest.Indexer)
	if !ok {
		return nil, unsupportedMediaType(fmt.Errorf("index media type %s is not supported", m.GetDescriptor().MediaType))
	}
	dl, err := indexer.GetManifestList()
	if err != nil {
		return nil, err
	}
	entries := []descriptor.Descriptor{}
	for _, d := range dl {
		if d.Platform == nil || d.Platform.OS == "unknown" || d.Platform.Architecture == "unknown" {
			continue
		}
		entries = append(entries, d)
	}
	return entries, nil
}

// artifactTypeNote returns " (artifact type T)" for an index that declares
// an artifactType, and "" otherwise.
func artifactTypeNote(m manifest.Manifest) string {
	raw, err := m.RawBody()
	if err != nil {
		return ""
	}
	var fields struct {
		ArtifactType string `json:"artifactType"`
	}
	if json.Unmarshal(raw, &fields) != nil || fields.ArtifactType == "" {
		return ""
	}
	return fmt.Sprintf(" (artifact type %s)", fields.ArtifactType)
}

// platformNames lists the entries' platforms as "os/arch[/variant]", in
// index order and without duplicates.
func platformNames(entries []descriptor.Descriptor) []string {
	names := []string{}
	for _, d := range entries {
		name := d.Platform.String()
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// readBlob reads a config blob, verifying its size and digest, without
// ever holding more than maxConfigSize bytes.
func readBlob(ctx context.Context, rc *regclient.RegClient, r ref.Ref, d descriptor.Descriptor) ([]byte, error) {
	if d.Size > maxConfigSize {
		return nil, fmt.Errorf("config %s is %d bytes, more than the %d byte limit%.0w", d.Digest, d.Size, maxConfigSize, errs.ErrSizeLimitExceeded)
	}
	limit := d.Size
	if limit <= 0 {
		limit = maxConfigSize
	}

	blob, err := rc.BlobGet(ctx, r, d)
	if err != nil {
		// regclient retries a response whose Content-Length differs from
		// the descriptor's size, then reports only the retries.
		if op := operationFromContext(ctx); op != nil && op.contentLength("/blobs/"+d.Digest.String()) > d.Size && d.Size > 0 {
			return nil, fmt.Errorf("config %s: the registry sent %d bytes for a %d byte descriptor%.0w", d.Digest, op.contentLength("/blobs/"+d.Digest.String()), d.Size, errs.ErrSizeLimitExceeded)
		}
		return nil, fmt.Errorf("failed to get config %s: %w", d.Digest, err)
	}
	defer blob.Close()
	body, err := io.ReadAll(io.LimitReader(blob, limit+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read config %s: %w", d.Digest, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("config %s is larger than its descriptor's %d bytes%.0w", d.Digest, limit, errs.ErrSizeLimitExceeded)
	}
	return body, nil
}

// requireImageLayers rejects manifests that use the image config media
// type but carry other content, as artifacts built before the OCI artifact
// fields existed do.
func requireImageLayers(imager manifest.Imager) error {
	layers, err := imager.GetLayers()
	if err != nil {
		return unsupportedMediaType(err)
	}
	for _, layer := range layers {
		if !strings.HasPrefix(layer.MediaType, "application/vnd.oci.image.layer.") &&
			!strings.HasPrefix(layer.MediaType, "application/vnd.docker.image.rootfs.") {
			return unsupportedMediaType(fmt.Errorf("layer media type %s is not an image layer, the manifest is probably an artifact", layer.MediaType))
		}
	}
	return nil
}

// configPlatform reads the platform fields of an image config. The OCI
// image spec requires os and architecture, so a config without them is
// not an image config (an artifact's "{}" config, for example).
func configPlatform(body []byte) (platform.Platform, error) {
	var p platform.Platform
	if err := json.Unmarshal(body, &p); err != nil {
		return p, &kindError{kind: kindInvalidContent, err: fmt.Errorf("config is not valid JSON: %w", err)}
	}
	if p.OS == "" || p.Architecture == "" {
		return p, unsupportedMediaType(fmt.Errorf("config has no os or architecture, so it is not an image config"))
	}
	return p, nil
}

// requireRegularFiles refuses layout files that are not regular files:
// regclient reads them without a context, so a FIFO or a device would
// block the call past its timeout.
func requireRegularFiles(dir string, names ...string) error {
	for _, name := range names {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("cannot read the OCI layout at %s: %w", dir, err)
		}
		if !info.Mode().IsRegular() {
			return &kindError{kind: kindInvalidContent, err: fmt.Errorf("%s in the OCI layout is not a regular file", path)}
		}
	}
	return nil
}

// requireLayoutBlob checks a blob of an ocidir reference before regclient
// opens it; registry references need no check.
func requireLayoutBlob(r ref.Ref, digest string) error {
	if r.Scheme != "ocidir" {
		return nil
	}
	algorithm, encoded, ok := strings.Cut(digest, ":")
	if !ok || strings.ContainsAny(encoded, "/\\.") || strings.ContainsAny(algorithm, "/\\.") {
		return &kindError{kind: kindInvalidContent, err: fmt.Errorf("invalid digest %q", digest)}
	}
	return requireRegularFiles(filepath.Join(r.Path, "blobs", algorithm), encoded)
}

func registryName(r ref.Ref) string {
	if r.Scheme == "ocidir" {
		return "ocidir://" + r.Path
	}
	return r.Registry
}

func unsupportedMediaType(err error) error {
	return fmt.Errorf("%w%.0w", err, errs.ErrUnsupportedMediaType)
}
