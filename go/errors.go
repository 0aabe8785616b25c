package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/url"
	"regexp"
	"strconv"

	"github.com/regclient/regclient/types/errs"
)

// Error kinds, matched by name in the Python layer's exception table.
const (
	kindInvalidArgument      = "invalid_argument"
	kindInvalidReference     = "invalid_reference"
	kindInvalidPlatform      = "invalid_platform"
	kindInvalidContent       = "invalid_content"
	kindNotFound             = "not_found"
	kindPlatformNotFound     = "platform_not_found"
	kindAuthentication       = "authentication"
	kindUnsupportedMediaType = "unsupported_media_type"
	kindRateLimit            = "rate_limit"
	kindTimeout              = "timeout"
	kindCanceled             = "canceled"
	kindConnection           = "connection"
	kindDigestMismatch       = "digest_mismatch"
	kindSizeLimit            = "size_limit"
	kindResponse             = "response"
	kindPolicy               = "policy"
	kindInternal             = "internal"
)

// sentinelKinds maps regclient's sentinel errors to kinds. Order matters:
// the rate limit and unauthorized errors also wrap ErrHTTPStatus.
var sentinelKinds = []struct {
	err  error
	kind string
}{
	{context.DeadlineExceeded, kindTimeout},
	{context.Canceled, kindCanceled},
	{errs.ErrInvalidReference, kindInvalidReference},
	{errs.ErrHTTPUnauthorized, kindAuthentication},
	{errs.ErrHTTPRateLimit, kindRateLimit},
	{errs.ErrDigestMismatch, kindDigestMismatch},
	{errs.ErrSizeLimitExceeded, kindSizeLimit},
	{errs.ErrUnsupportedMediaType, kindUnsupportedMediaType},
	{errs.ErrNotFound, kindNotFound},
	{fs.ErrNotExist, kindNotFound},
	{errs.ErrHTTPStatus, kindResponse},
	// A body that ends before its Content-Length is a broken connection.
	{io.ErrUnexpectedEOF, kindConnection},
	{errs.ErrShortRead, kindConnection},
}

// kindError carries a kind chosen where the error is made.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func invalidArgument(err error) error {
	return &kindError{kind: kindInvalidArgument, err: err}
}

// errorContext is the reference, registry and platforms that an operation
// found before it failed.
type errorContext struct {
	Reference string
	Registry  string
	Platforms []string
}

// errorRecord is the JSON form of an error handed to the binding.
type errorRecord struct {
	Kind       string   `json:"kind"`
	Message    string   `json:"message"`
	Reference  string   `json:"reference,omitempty"`
	Registry   string   `json:"registry,omitempty"`
	Status     int      `json:"status,omitempty"`
	RetryAfter *float64 `json:"retry_after,omitempty"`
	Platforms  []string `json:"platforms,omitempty"`
}

var httpStatusRE = regexp.MustCompile(`\[http (\d{3})\]`)

func newErrorRecord(err error, info *errorContext) *errorRecord {
	rec := &errorRecord{Kind: errorKind(err), Message: err.Error()}
	if info != nil {
		rec.Reference, rec.Registry, rec.Platforms = info.Reference, info.Registry, info.Platforms
	}
	if m := httpStatusRE.FindStringSubmatch(rec.Message); m != nil {
		rec.Status, _ = strconv.Atoi(m[1])
	}
	return rec
}

// encodeError returns the JSON envelope for an error that has no operation.
func encodeError(err error) []byte {
	out, marshalErr := json.Marshal(envelope{Error: newErrorRecord(err, nil), Logs: []logRecord{}})
	if marshalErr != nil {
		return []byte(`{"error":{"kind":"internal","message":"failed to encode an error record"},"logs":[]}`)
	}
	return out
}

func errorKind(err error) string {
	var ke *kindError
	if errors.As(err, &ke) {
		return ke.kind
	}
	for _, entry := range sentinelKinds {
		if errors.Is(err, entry.err) {
			return entry.kind
		}
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) || errors.Is(err, errs.ErrParsingFailed) {
		return kindInvalidContent
	}
	if isConnectionError(err) {
		return kindConnection
	}
	return kindInternal
}

// isConnectionError reports transport failures: every error that net/http
// returns from a request is a *url.Error, including TLS failures such as a
// plain HTTP server responding to an HTTPS request.
func isConnectionError(err error) bool {
	var urlErr *url.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	var tlsRecord tls.RecordHeaderError
	var tlsVerify *tls.CertificateVerificationError
	return errors.As(err, &urlErr) || errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.As(err, &unknownAuthority) || errors.As(err, &hostnameErr) ||
		errors.As(err, &certInvalid) || errors.As(err, &tlsRecord) ||
		errors.As(err, &tlsVerify)
}
