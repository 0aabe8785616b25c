package main

import (
	"container/list"
	"sync"

	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
)

// maxKnownTags bounds the set of tags seen before. The set only decides
// whether a lookup starts with a HEAD request; losing an entry costs one
// GET, never a wrong result.
const maxKnownTags = 4096

// contentCache keeps manifests and configs by digest. Content addressed by
// digest never changes, so an entry never goes stale; the cache only
// evicts the least recently used entries beyond its byte limit.
type contentCache struct {
	mu       sync.Mutex
	maxBytes int64
	size     int64
	entries  map[string]*list.Element
	order    *list.List // front is most recently used

	knownTags map[string]struct{}
}

type cacheEntry struct {
	key      string
	manifest manifest.Manifest
	config   []byte
	// platform is the config's parsed platform, kept so a cached config
	// is not parsed again on every lookup.
	platform platform.Platform
	size     int64
}

func newContentCache(maxBytes int64) *contentCache {
	return &contentCache{maxBytes: maxBytes, entries: map[string]*list.Element{}, order: list.New(), knownTags: map[string]struct{}{}}
}

func (c *contentCache) enabled() bool {
	return c != nil && c.maxBytes > 0
}

func (c *contentCache) getManifest(digest string) manifest.Manifest {
	if e := c.get("manifest:" + digest); e != nil {
		return e.manifest
	}
	return nil
}

func (c *contentCache) putManifest(m manifest.Manifest) {
	raw, err := m.RawBody()
	if err != nil {
		return
	}
	c.put(&cacheEntry{key: "manifest:" + m.GetDescriptor().Digest.String(), manifest: m, size: int64(len(raw))})
}

// getConfig returns a cached config and its platform, or nil.
func (c *contentCache) getConfig(digest string) ([]byte, platform.Platform) {
	if e := c.get("config:" + digest); e != nil {
		return e.config, e.platform
	}
	return nil, platform.Platform{}
}

func (c *contentCache) putConfig(digest string, body []byte, p platform.Platform) {
	c.put(&cacheEntry{key: "config:" + digest, config: body, platform: p, size: int64(len(body))})
}

func (c *contentCache) get(key string) *cacheEntry {
	if !c.enabled() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry)
}

func (c *contentCache) put(e *cacheEntry) {
	if !c.enabled() || e.size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.entries[e.key] = c.order.PushFront(e)
	c.size += e.size
	for c.size > c.maxBytes {
		oldest := c.order.Back()
		old := oldest.Value.(*cacheEntry)
		c.order.Remove(oldest)
		delete(c.entries, old.key)
		c.size -= old.size
	}
}

// tagSeen reports whether a tag was looked up before, so a HEAD request
// may find its manifest in the cache.
func (c *contentCache) tagSeen(tag string) bool {
	if !c.enabled() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.knownTags[tag]
	return ok
}

func (c *contentCache) addTag(tag string) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.knownTags) >= maxKnownTags {
		clear(c.knownTags)
	}
	c.knownTags[tag] = struct{}{}
}
