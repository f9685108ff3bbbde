package addr

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	seen := make(map[PublicKey]bool)
	for range 20 {
		id, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !id.Public.Canonical() {
			t.Errorf("generated non-canonical key %x", id.Public[:])
		}
		if !bytes.Equal(id.Private.PublicKey().Bytes(), id.Public[:]) {
			t.Error("Public does not match Private")
		}
		if seen[id.Public] {
			t.Fatal("Generate repeated a key")
		}
		seen[id.Public] = true
	}
}

func TestFromPrivate(t *testing.T) {
	tests := []struct {
		name, privHex, wantPubHex, wantErr string
	}{
		{name: "RFC 7748 Bob", privHex: bobPrivateHex, wantPubHex: bobPublicHex},
		{name: "RFC 7748 Alice", privHex: alicePrivateHex, wantPubHex: alicePublicHex},
		{name: "empty", privHex: "", wantErr: "must be 32 bytes, got 0"},
		{name: "31 bytes", privHex: bobPrivateHex[:62], wantErr: "must be 32 bytes, got 31"},
		{name: "33 bytes", privHex: bobPrivateHex + "00", wantErr: "must be 32 bytes, got 33"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := FromPrivate(mustHex(t, tt.privHex))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromPrivate error = %v, want %q", err, tt.wantErr)
				}
				if id != nil {
					t.Error("non-nil identity on error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(id.Public[:]); got != tt.wantPubHex {
				t.Errorf("public key = %s, want %s", got, tt.wantPubHex)
			}
		})
	}
	if _, err := FromPrivate(nil); err == nil {
		t.Error("FromPrivate(nil) succeeded")
	}
}

// TestIdentityStringHidesPrivate: logging an identity must not leak the key.
func TestIdentityStringHidesPrivate(t *testing.T) {
	id, err := FromPrivate(mustHex(t, bobPrivateHex))
	if err != nil {
		t.Fatal(err)
	}
	privB64 := base64.StdEncoding.EncodeToString(id.Private.Bytes())
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{id, *id} {
			out := fmt.Sprintf(format, v)
			if strings.Contains(out, privB64) || strings.Contains(out, bobPrivateHex) || strings.Contains(out, "93 171 8 126") || strings.Contains(out, "0x5d, 0xab") {
				t.Errorf("fmt %s of %T leaks the private key: %s", format, v, out)
			}
			if !strings.Contains(out, bobPublicBase64) {
				t.Errorf("fmt %s of %T = %s, want the public key", format, v, out)
			}
		}
	}
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity")
	id, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Save(path, false); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if m := mode(t, path); m != 0o600 {
			t.Errorf("saved mode = %04o, want 0600", m)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# POOL identity key — keep secret (mode 0600)\n" + base64.StdEncoding.EncodeToString(id.Private.Bytes()) + "\n"
	if string(data) != want {
		t.Errorf("file content = %q, want %q", data, want)
	}
	got, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Public != id.Public || !got.Private.Equal(id.Private) {
		t.Error("Load returned a different identity")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Save, want 1 (temporary file left behind?)", len(entries))
	}
}

func TestSaveOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity")
	first, _ := Generate()
	second, _ := Generate()
	if err := first.Save(path, false); err != nil {
		t.Fatal(err)
	}

	err := second.Save(path, false)
	if err == nil {
		t.Fatal("Save over an existing file without force succeeded")
	}
	if want := "refusing to overwrite " + path + "; use --force"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("error %q does not wrap fs.ErrExist", err)
	}
	if got, err := LoadIdentity(path); err != nil || got.Public != first.Public {
		t.Fatalf("file changed after a refused Save: %v", err)
	}

	// An existing file of any kind is refused, even a dangling symlink.
	link := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err == nil {
		if err := second.Save(link, false); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Save over a dangling symlink: %v, want fs.ErrExist", err)
		}
	}

	// force replaces it, and the result is 0600 even if the old file was not.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := second.Save(path, true); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if m := mode(t, path); m != 0o600 {
			t.Errorf("mode after forced Save = %04o, want 0600", m)
		}
	}
	if got, err := LoadIdentity(path); err != nil || got.Public != second.Public {
		t.Fatalf("forced Save did not replace the key: %v", err)
	}
	// force also works where nothing exists yet.
	if err := first.Save(filepath.Join(dir, "fresh"), true); err != nil {
		t.Fatal(err)
	}
}

func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	id, _ := Generate()
	tests := []struct {
		name    string
		id      *Identity
		path    string
		force   bool
		wantErr string
	}{
		{"nil identity", nil, filepath.Join(dir, "a"), false, "cannot save an empty identity"},
		{"nil private key", &Identity{}, filepath.Join(dir, "b"), false, "cannot save an empty identity"},
		{"missing directory", id, filepath.Join(dir, "no", "such", "dir", "id"), false, "cannot create identity file in"},
		{"missing directory, force", id, filepath.Join(dir, "no", "id"), true, "cannot create identity file in"},
		{"onto a directory, force", id, dir, true, "cannot save identity file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.Save(tt.path, tt.force)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Save error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("failed Saves left %d entries behind", len(entries))
	}
}

func writeFile(t *testing.T, path, content string, perm fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile's perm is filtered by the umask; set it exactly.
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// TestLoadPermissions: the check is on mode bits, so it holds for root too.
func TestLoadPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix mode bits on Windows")
	}
	dir := t.TempDir()
	id, _ := FromPrivate(mustHex(t, bobPrivateHex))
	content := identityHeader + base64.StdEncoding.EncodeToString(id.Private.Bytes()) + "\n"
	tests := []struct {
		perm fs.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o602, false},
		{0o610, false},
		{0o601, false},
		{0o666, false},
		{0o777, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.perm), func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("id-%04o", tt.perm))
			writeFile(t, path, content, tt.perm)
			got, err := LoadIdentity(path)
			if tt.ok {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got.Public != id.Public {
					t.Fatal("wrong key")
				}
				return
			}
			want := fmt.Sprintf("identity file %q is accessible by group/others (mode %04o); run: chmod 600 %s", path, tt.perm, path)
			if err == nil || err.Error() != want {
				t.Fatalf("Load error = %v, want %q", err, want)
			}
			if !errors.Is(err, ErrInsecurePermissions) {
				t.Errorf("error does not wrap ErrInsecurePermissions")
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	writeFile(t, regular, "x", 0o600)

	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(dir, "missing")
		_, err := LoadIdentity(path)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("identity file %q does not exist", path)) {
			t.Fatalf("Load error = %v", err)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error does not wrap fs.ErrNotExist")
		}
	})
	t.Run("directory", func(t *testing.T) {
		sub := filepath.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := LoadIdentity(sub)
		if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Fatalf("Load error = %v", err)
		}
	})
	t.Run("path through a file", func(t *testing.T) {
		_, err := LoadIdentity(filepath.Join(regular, "id"))
		if err == nil || !strings.Contains(err.Error(), "cannot read identity file") {
			t.Fatalf("Load error = %v", err)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		if runtime.GOOS == "windows" || os.Geteuid() == 0 {
			t.Skip("root (or Windows) can read a mode-0000 file")
		}
		path := filepath.Join(dir, "unreadable")
		writeFile(t, path, "x", 0o000)
		_, err := LoadIdentity(path)
		if err == nil || !strings.Contains(err.Error(), "cannot read identity file") || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("Load error = %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		path := filepath.Join(dir, "large")
		writeFile(t, path, strings.Repeat("#\n", maxIdentityFile), 0o600)
		_, err := LoadIdentity(path)
		if err == nil || !strings.Contains(err.Error(), "is larger than") {
			t.Fatalf("Load error = %v", err)
		}
	})
}

func TestLoadContent(t *testing.T) {
	id, _ := FromPrivate(mustHex(t, bobPrivateHex))
	key := base64.StdEncoding.EncodeToString(id.Private.Bytes())
	// A key with non-zero unused bits in its last character; decodes with
	// a lenient decoder, refused by the strict one.
	sloppy := key[:42] + string(key[42]+1) + "="
	tests := []struct {
		name, content, wantErr string
	}{
		{name: "as written", content: identityHeader + key + "\n"},
		{name: "no comment, no newline", content: key},
		{name: "CRLF and blank lines", content: "\r\n# one\r\n\r\n  # indented comment\r\n" + key + "\r\n\r\n"},
		{name: "surrounding spaces", content: "\t" + key + "  \n# trailing comment\n"},
		{name: "empty", content: "", wantErr: "no key found; expected one line with the 44-character base64 X25519 private key"},
		{name: "comments only", content: identityHeader + "# nothing\n\n", wantErr: "no key found"},
		{name: "two keys", content: key + "\n\n" + key + "\n", wantErr: "line 3: a second key line (the first is line 1)"},
		{name: "hex key", content: identityHeader + bobPrivateHex + "\n", wantErr: "line 2: 64 characters; expected one line with the 44-character base64"},
		{name: "truncated", content: key[:40] + "\n", wantErr: "line 1: 40 characters"},
		{name: "key with trailing comment", content: key + " # mine\n", wantErr: "line 1: 51 characters"},
		{name: "bad base64", content: "!" + key[1:], wantErr: "line 1: not valid base64 (illegal base64 data at input byte 0)"},
		{name: "non-strict base64", content: sloppy, wantErr: "line 1: not valid base64"},
		{name: "no padding, 44 chars", content: key[:43] + "A", wantErr: "line 1: not valid base64"},
		// Any 32 bytes are a valid X25519 private key, so a public key
		// pasted here by mistake loads as some other identity; only the
		// format can be checked.
		{name: "public key pasted by mistake", content: "# pub\n" + bobPublicBase64 + "\n"},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("id%d", i))
			writeFile(t, path, tt.content, 0o600)
			got, err := LoadIdentity(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if tt.name != "public key pasted by mistake" && got.Public != id.Public {
					t.Error("wrong key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error = %v, want %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("identity file %q: ", path)) {
				t.Errorf("error %q does not name the file", err)
			}
			// The file is secret: errors must not echo it.
			for _, secret := range []string{key[:20], key[5:30], sloppy[:20]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q echoes key material", err)
				}
			}
		})
	}
}
