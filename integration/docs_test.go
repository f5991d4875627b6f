package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// The docs' shell blocks that are marked runnable are run against the
// demo's setup (a dev Vault, the emulator with its demo set and the
// passphrase-protected encrypted.example.com, the plugin registered by
// sha256 and mounted at nhncert/ as scripts/demo.sh does), so that a
// renamed field or a changed error fails here, not in a reader's terminal.
// The convention (docs/development.md, "Runnable doc blocks"):
//
//	<!-- runnable -->              the next ```sh block runs, in bash with
//	                               -e -o pipefail; it must exit 0
//	<!-- runnable needs: keytool -->  the same, skipped (and said so) when
//	                               a named program is not on PATH
//	! command                      a line that begins with "! " must fail
//	<!-- output -->                the next ```text block: each of its lines
//	                               must appear in the block's output
//
// Blocks run in the order of the pages (README.md, then docs/*.md by name)
// and of the blocks in a page, against one Vault, in one working
// directory, with VAULT_ADDR, VAULT_TOKEN (root) and a `vault` on PATH.

// docBlock is one runnable shell block of a page.
type docBlock struct {
	file  string   // the page, relative to the repository
	line  int      // the line of its ```sh fence
	needs []string // programs it needs on PATH
	code  string
	want  []string // lines its output must hold
}

var (
	runnableMark = regexp.MustCompile(`^<!-- runnable(?: needs: ([^>]*?))? -->$`)
	outputMark   = "<!-- output -->"
)

// docPages returns README.md and docs/*.md, relative to the repository.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	require.NoError(t, err)
	sort.Strings(pages)
	out := []string{"README.md"}
	for _, p := range pages {
		rel, err := filepath.Rel("..", p)
		require.NoError(t, err)
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}

// parseDocBlocks returns the runnable blocks of a page's text.
func parseDocBlocks(file, text string) ([]docBlock, error) {
	lines := strings.Split(text, "\n")
	var out []docBlock
	// fence returns the body of the fence opening at line i (which must be
	// open), and the index of its closing line.
	fence := func(i int, open string) (string, int, error) {
		if i >= len(lines) || lines[i] != open {
			return "", 0, fmt.Errorf("%s:%d: a marker must be followed by a %s line", file, i, open)
		}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == "```" {
				return strings.Join(lines[i+1:j], "\n") + "\n", j, nil
			}
		}
		return "", 0, fmt.Errorf("%s:%d: %s block not closed", file, i+1, open)
	}
	for i := 0; i < len(lines); i++ {
		m := runnableMark.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		code, end, err := fence(i+1, "```sh")
		if err != nil {
			return nil, err
		}
		b := docBlock{file: file, line: i + 2, needs: strings.Fields(m[1]), code: code}
		// An output block may follow, after blank lines.
		k := end + 1
		for k < len(lines) && strings.TrimSpace(lines[k]) == "" {
			k++
		}
		if k < len(lines) && lines[k] == outputMark {
			want, wend, err := fence(k+1, "```text")
			if err != nil {
				return nil, err
			}
			for _, w := range strings.Split(strings.TrimRight(want, "\n"), "\n") {
				if w = strings.TrimSpace(w); w != "" {
					b.want = append(b.want, w)
				}
			}
			end = wend
		}
		out = append(out, b)
		i = end
	}
	return out, nil
}

// script is the block as bash runs it: "! command" lines become a check
// that the command fails (bash's own "!" would not stop a -e script).
func (b docBlock) script() string {
	var s strings.Builder
	s.WriteString("set -eo pipefail\n")
	for _, l := range strings.Split(b.code, "\n") {
		if rest, ok := strings.CutPrefix(l, "! "); ok {
			// The message in single quotes: the shell expands nothing
			// in it (a token in a variable stays a name).
			msg := "expected to fail, but it succeeded: " + rest
			fmt.Fprintf(&s, "if\n%s\nthen echo '%s' >&2; exit 1; fi\n", rest, strings.ReplaceAll(msg, "'", `'\''`))
			continue
		}
		s.WriteString(l + "\n")
	}
	return s.String()
}

// docsEnv is the demo's setup: newEnv (the demo set, the plugin mounted at
// nhncert/) and encrypted.example.com, whose key NHN holds encrypted with
// demo-passphrase, added as scripts/demo.sh adds it.
func docsEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	_, err := e.emu.admin.AddCert(ctxT(t), emulator.AddCertRequest{
		Name: "encrypted.example.com", KeyType: emulator.RSA,
		KeyPassphrase: "demo-passphrase", KeyEncryption: string(emulator.KeyLegacy),
	})
	require.NoError(t, err)
	return e
}

func TestDocsRunnableBlocks(t *testing.T) {
	var blocks []docBlock
	for _, page := range docPages(t) {
		text, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(page)))
		require.NoError(t, err)
		bs, err := parseDocBlocks(page, string(text))
		require.NoError(t, err)
		blocks = append(blocks, bs...)
	}
	require.NotEmpty(t, blocks, "no page has a runnable block")

	e := docsEnv(t)
	bin := t.TempDir()
	require.NoError(t, os.Symlink(bins.vault, filepath.Join(bin, "vault")))
	work := t.TempDir()
	environ := baseEnv(e.vault.home, "VAULT_ADDR="+e.vault.addr, "VAULT_TOKEN="+e.vault.rootToken, "NO_COLOR=1")
	for i, kv := range environ {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			environ[i] = "PATH=" + bin + string(os.PathListSeparator) + p
		}
	}

	for _, b := range blocks {
		t.Run(fmt.Sprintf("%s:%d", b.file, b.line), func(t *testing.T) {
			for _, n := range b.needs {
				if _, err := exec.LookPath(n); err != nil {
					t.Skipf("SKIPPED: %s is not on PATH; the block at %s:%d needs it", n, b.file, b.line)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-c", b.script())
			cmd.Dir, cmd.Env = work, environ
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err != nil {
				t.Fatalf("the block at %s:%d failed (%v):\n%s\noutput:\n%s", b.file, b.line, err, b.code, out.String())
			}
			for _, w := range b.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("the output of the block at %s:%d lacks %q (its <!-- output --> block):\n%s", b.file, b.line, w, out.String())
				}
			}
		})
	}
}

// TestDocsBlockParsing checks the convention on a page of its own, without
// Vault: markers, needs, "!" lines and expected output.
func TestDocsBlockParsing(t *testing.T) {
	page := "intro\n\n<!-- runnable needs: jq -->\n```sh\nvault read x\n! vault read y   # refused\n```\n\n<!-- output -->\n```text\nfield\n\n  other\n```\n\n```sh\nnot run\n```\n"
	bs, err := parseDocBlocks("p.md", page)
	require.NoError(t, err)
	require.Len(t, bs, 1)
	require.Equal(t, 4, bs[0].line)
	require.Equal(t, []string{"jq"}, bs[0].needs)
	require.Equal(t, []string{"field", "other"}, bs[0].want)
	require.Contains(t, bs[0].script(), "if\nvault read y   # refused\nthen echo")

	_, err = parseDocBlocks("p.md", "<!-- runnable -->\n```bash\nx\n```\n")
	require.ErrorContains(t, err, "must be followed by a ```sh line")
}
