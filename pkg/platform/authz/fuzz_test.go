package authz_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/errs"
)

// checkGenuine fails unless tok, accepted by the verifier as p, is exactly a token the
// issuer signed: three segments of canonical unpadded base64url, an EdDSA signature by the
// issuer's key over the first two, the issuer's kid, and claims that are valid now and say
// what p says. It is written against the token format, not the verifier's code, so that an
// accepted forgery or a second spelling of a genuine token shows.
func checkGenuine(t *testing.T, is *authztest.Issuer, tok string, p authz.Principal) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted %q: not three segments", tok)
	}
	var seg [3][]byte
	for i, s := range parts {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != s {
			t.Fatalf("accepted %q: segment %d is not canonical base64url", tok, i)
		}
		seg[i] = b
	}
	if !ed25519.Verify(is.Public, []byte(parts[0]+"."+parts[1]), seg[2]) {
		t.Fatalf("accepted %q: not signed by the trusted key", tok)
	}
	var header struct{ Alg, Kid string }
	var claims struct {
		Iss, Sub, Role, Email string
		Aud                   any
		Exp                   *float64
	}
	if json.Unmarshal(seg[0], &header) != nil || header.Alg != "EdDSA" || header.Kid != is.Kid {
		t.Fatalf("accepted %q: header %s", tok, seg[0])
	}
	if json.Unmarshal(seg[1], &claims) != nil || claims.Iss != authz.DefaultIssuer || claims.Exp == nil ||
		time.Unix(int64(*claims.Exp), 0).Before(time.Now()) || claims.Sub == "" || claims.Sub != p.Subject ||
		claims.Role != p.Role || !authz.ValidRole(p.Role) || claims.Email != p.Email {
		t.Fatalf("accepted %q as %+v: claims %s", tok, p, seg[1])
	}
	aud, _ := json.Marshal(claims.Aud)
	if !bytes.Contains(aud, []byte(`"`+authz.DefaultAudience+`"`)) {
		t.Fatalf("accepted %q: audience %s", tok, aud)
	}
}

// FuzzVerify feeds the access-token verifier any token text, starting from a genuine token,
// spellings of it that differ only in form, and every attack of authztest.Attacks. It never
// panics; it refuses with the one unauthenticated error (the same message whatever failed),
// and accepts only a token that is exactly one the trusted key signed (checkGenuine).
func FuzzVerify(f *testing.F) {
	is := authztest.New(f)
	v := is.Verifier()
	valid := is.Token(f, "u1", authz.RoleClinician)
	parts := strings.Split(valid, ".")
	sig := parts[2]
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", sig[len(sig)-1])
	for _, s := range []string{
		valid,
		// The same bytes, spelled otherwise: spare low bits in the signature's last
		// character, line breaks (which Go's base64 skips), padding, surrounding text.
		parts[0] + "." + parts[1] + "." + sig[:len(sig)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1]),
		parts[0] + "." + parts[1] + "." + sig[:10] + "\n" + sig[10:],
		parts[0] + "." + parts[1] + "." + sig + "\r\n",
		parts[0] + "." + parts[1] + "." + sig + "==",
		parts[0] + "\n." + parts[1] + "." + sig,
		" " + valid, "Bearer " + valid, valid + ".", valid + "." + sig,
		parts[0] + "." + parts[1] + "." + strings.ReplaceAll(strings.ReplaceAll(sig, "-", "+"), "_", "/"),
		"..", ".", "\x00", "e30.e30.", strings.Repeat("a.", 5000),
	} {
		f.Add(s)
	}
	for _, tok := range authztest.Attacks(f, is, base64.RawURLEncoding.EncodeToString(make([]byte, 32))) {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(context.Background(), tok)
		if err != nil {
			if e := errs.As(err); e.Kind != errs.Unauthenticated || e.Message != "a valid access token is required" {
				t.Fatalf("refused %q with %v (%q)", tok, e.Kind, e.Message)
			}
			return
		}
		checkGenuine(t, is, tok, p)
	})
}

// bodyTransport answers every request with status 200 and body.
type bodyTransport []byte

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(b)), Request: r}, nil
}

// FuzzJWKSSource feeds the verifier a key set it fetches (any body): fetching and parsing
// never panic, and a genuine token is accepted only when the set holds the issuer's public
// key under the token's kid as an Ed25519 JWK.
func FuzzJWKSSource(f *testing.F) {
	is := authztest.New(f)
	tok := is.Token(f, "u1", authz.RoleAdmin)
	good, _ := json.Marshal(authz.JWKS{Keys: []authz.JWK{authz.PublicJWK(is.Kid, is.Public)}})
	f.Add(good)
	x := base64.RawURLEncoding.EncodeToString(is.Public)
	for _, s := range []string{
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"` + is.Kid + `"}]}`,
		`{"keys":[{"kty":"RSA","crv":"Ed25519","x":"` + x + `","kid":"` + is.Kid + `"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `=","kid":"` + is.Kid + `"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x[:40] + `","kid":"` + is.Kid + `"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":""}]}`,
		`{"keys":[null,{},[]]}`, `{"keys":{}}`, `[]`, `null`, ``, `{`, `{"keys":[` + strings.Repeat(`[`, 10001) + `]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		src := authz.NewJWKSSource("http://jwks.test/.well-known/jwks.json", &http.Client{Transport: bodyTransport(body)}, time.Hour)
		if k, err := src.PublicKey(context.Background(), is.Kid); err == nil {
			if pub, ok := k.(ed25519.PublicKey); !ok || len(pub) != ed25519.PublicKeySize {
				t.Fatalf("key %T %v from %q", k, k, body)
			}
		}
		_, err := authz.NewVerifier(src, authz.DefaultIssuer, authz.DefaultAudience).Verify(context.Background(), tok)
		if err != nil {
			if errs.KindOf(err) != errs.Unauthenticated {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		var set struct{ Keys []authz.JWK }
		_ = json.Unmarshal(body, &set)
		for _, k := range set.Keys {
			if pub, err := k.PublicKey(); err == nil && k.Kid == is.Kid && pub.Equal(is.Public) {
				return
			}
		}
		t.Fatalf("token accepted with key set %q", body)
	})
}
