package broker

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/pms/pms/pkg/platform/privfile"
)

// Credentials are the Kafka principals' passwords, as the credentials file holds them
// (--kafka-credentials): the embedded broker's users, and what each client logs in with.
type Credentials map[string]string

// maxCredentialsFile bounds the credentials file: a handful of short lines.
const maxCredentialsFile = 64 << 10

// ReadCredentials reads a credentials file: one "<principal> <password>" a line, blank lines
// and lines starting with # ignored.
func ReadCredentials(path string) (Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > maxCredentialsFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxCredentialsFile)
	}
	creds := Credentials{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			// The line is not quoted: it may hold a password.
			return nil, fmt.Errorf("%s: line %d: want \"<principal> <password>\"", path, n)
		}
		creds[f[0]] = f[1]
	}
	return creds, nil
}

// EnsureCredentials reads path and gives every principal missing from it a password (seed's,
// else a random one), writing the file back (mode 0600, atomically) when it added one: the
// embedded broker's principals are created on its first start and kept from then on.
func EnsureCredentials(path string, principals []string, seed ...Credentials) (Credentials, error) {
	creds, err := ReadCredentials(path)
	if errors.Is(err, fs.ErrNotExist) {
		creds, err = Credentials{}, nil
	}
	if err != nil {
		return nil, err
	}
	added := false
	for _, p := range principals {
		if creds[p] != "" {
			continue
		}
		if len(seed) > 0 && seed[0][p] != "" {
			creds[p], added = seed[0][p], true
			continue
		}
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		creds[p], added = base64.RawURLEncoding.EncodeToString(b), true
	}
	if !added {
		return creds, nil
	}
	var buf strings.Builder
	buf.WriteString("# Kafka principals of the embedded broker (SASL/SCRAM-SHA-512): \"<principal> <password>\".\n")
	names := make([]string, 0, len(creds))
	for p := range creds {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		fmt.Fprintf(&buf, "%s %s\n", p, creds[p])
	}
	return creds, privfile.Write(path, []byte(buf.String()), false)
}
