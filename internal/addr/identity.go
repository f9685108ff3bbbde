package addr

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Identity is a node's long-lived X25519 identity key pair (draft §2,
// DESIGN 2.2). Its address is derived from Public (see New).
type Identity struct {
	Private *ecdh.PrivateKey
	Public  PublicKey
}

// identityHeader is the first line Save writes. Comment lines are free-form;
// this one tells whoever opens the file what it is and how to keep it.
const identityHeader = "# POOL identity key — keep secret (mode 0600)\n"

// maxIdentityFile bounds what Load reads: a key file is one short line plus
// comments, and a path pointed at something huge must not exhaust memory.
const maxIdentityFile = 64 << 10

// Generate creates a new identity from the operating system's CSPRNG.
func Generate() (*Identity, error) {
	// Since Go 1.26 crypto/ecdh ignores the reader and always uses a secure
	// source; crypto/rand.Reader is still the right value should
	// GODEBUG=cryptocustomrand=1 bring the reader back.
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating X25519 identity key: %w", err)
	}
	return fromECDH(priv)
}

// FromPrivate builds an identity from a 32-byte X25519 private key
// (RFC 7748 §5 scalar; clamping happens inside crypto/ecdh).
func FromPrivate(b []byte) (*Identity, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("X25519 private key must be 32 bytes, got %d", len(b))
	}
	priv, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("invalid X25519 private key: %w", err)
	}
	return fromECDH(priv)
}

func fromECDH(priv *ecdh.PrivateKey) (*Identity, error) {
	var pub PublicKey
	copy(pub[:], priv.PublicKey().Bytes())
	// X25519 outputs are fully reduced (RFC 7748 §5), so this cannot fail;
	// it guards the invariant that every PublicKey we hand out is canonical.
	if err := pub.canonicalError(); err != nil {
		return nil, fmt.Errorf("derived public key: %w", err)
	}
	return &Identity{Private: priv, Public: pub}, nil
}

// String identifies the identity by its public key only. It exists so that
// logging an Identity with %v never prints the private key, which fmt would
// otherwise reach through ecdh.PrivateKey's unexported fields.
func (id Identity) String() string { return "identity " + id.Public.String() }

// GoString is String for %#v, for the same reason.
func (id Identity) GoString() string { return id.String() }

// Save writes the private key to path in the identity file format: the
// comment line identityHeader, then one line with the private key in standard
// base64. The file gets mode 0600 and appears atomically (temporary file in
// the same directory, fsync, then link or rename, then fsync of the
// directory), so a crash never leaves a truncated key behind.
//
// Unless force is set, an existing path is never replaced; the error then
// wraps fs.ErrExist. With force, path is replaced (a symlink is replaced
// itself, not followed).
func (id *Identity) Save(path string, force bool) error {
	if id == nil || id.Private == nil {
		return errors.New("cannot save an empty identity")
	}
	if !force {
		// Checked up front for a clear error before any file is created;
		// os.Link below closes the race with a concurrent writer.
		if _, err := os.Lstat(path); err == nil {
			return existsError(path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot check identity file %q: %w", path, err)
		}
	}

	dir := filepath.Dir(path)
	// os.CreateTemp creates the file with mode 0600, so the secret is never
	// readable by others, not even for a moment.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create identity file in %q: %w", dir, err)
	}
	tmpName := tmp.Name()
	defer func() {
		// Harmless after a successful rename (ENOENT); after a link it
		// drops the temporary name; on failure it removes the debris.
		_ = os.Remove(tmpName)
	}()
	content := identityHeader + base64.StdEncoding.EncodeToString(id.Private.Bytes()) + "\n"
	if err := writeSync(tmp, content); err != nil {
		return fmt.Errorf("cannot write identity file %q: %w", tmpName, err)
	}

	if force {
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("cannot save identity file: %w", err)
		}
	} else {
		// link(2) fails if path exists, so no concurrent writer can be
		// overwritten between the Lstat above and here.
		switch err := os.Link(tmpName, path); {
		case err == nil:
		case errors.Is(err, fs.ErrExist):
			return existsError(path)
		default:
			// Some filesystems (FAT, some FUSE) have no hard links; fall
			// back to rename, accepting the small race left after Lstat.
			if err := os.Rename(tmpName, path); err != nil {
				return fmt.Errorf("cannot save identity file: %w", err)
			}
		}
	}
	return syncDir(dir)
}

func writeSync(f *os.File, content string) error {
	// Chmod as well: CreateTemp's 0600 is a documented behaviour, but the
	// mode is the one property Load insists on, so make it explicit.
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(content)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for fsync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	return nil
}

func existsError(path string) error {
	return &wrapError{msg: fmt.Sprintf("refusing to overwrite %s; use --force", path), err: fs.ErrExist}
}

// ErrInsecurePermissions is wrapped by the error Load returns for an
// identity file that group or others may access.
var ErrInsecurePermissions = errors.New("identity file is accessible by group/others")

// Load reads an identity file written by Save.
//
// Like ssh refusing a private key others can read, Load refuses a file whose
// mode grants any access to group or others (mode & 0o077 != 0): the key
// may already have leaked, and the operator must know. The check is on the
// mode bits, so it applies to root as well. Windows has no such bits and is
// exempt.
//
// The file may hold blank lines and '#' comment lines and must hold exactly
// one line with the base64 private key. Errors never quote the file's
// content, since it is a secret.
func LoadIdentity(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("identity file %q does not exist (create one with \"pool keygen\"): %w", path, err)
		}
		return nil, fmt.Errorf("cannot read identity file %q: %w", path, err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// the file read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read identity file %q: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity file %q is not a regular file (%v)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, &wrapError{
			msg: fmt.Sprintf("identity file %q is accessible by group/others (mode %04o); run: chmod 600 %s", path, perm, path),
			err: ErrInsecurePermissions,
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read identity file %q: %w", path, err)
	}
	if len(data) > maxIdentityFile {
		return nil, fmt.Errorf("identity file %q is larger than %d bytes; expected one base64 private key line and comments", path, maxIdentityFile)
	}
	id, err := parseIdentity(data)
	if err != nil {
		return nil, fmt.Errorf("identity file %q: %w", path, err)
	}
	return id, nil
}

// parseIdentity parses the identity file format; errors name the line but
// never echo it.
func parseIdentity(data []byte) (*Identity, error) {
	const expected = "expected one line with the 44-character base64 X25519 private key"
	keyLine := 0
	var key []byte
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		t := strings.TrimSpace(string(line)) // also drops a CRLF's '\r'
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if keyLine != 0 {
			return nil, fmt.Errorf("line %d: a second key line (the first is line %d); %s", n, keyLine, expected)
		}
		keyLine = n
		if len(t) != publicKeyBase64Len {
			return nil, fmt.Errorf("line %d: %d characters; %s", n, len(t), expected)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(t)
		if err != nil || len(b) != 32 {
			// err names a byte offset, never the content.
			return nil, fmt.Errorf("line %d: not valid base64 (%v); %s", n, err, expected)
		}
		key = b
	}
	if keyLine == 0 {
		return nil, fmt.Errorf("no key found; %s", expected)
	}
	id, err := FromPrivate(key)
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", keyLine, err)
	}
	return id, nil
}

// wrapError carries a fixed, user-facing message and a sentinel for
// errors.Is.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }
