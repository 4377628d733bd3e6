package render

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestMaskingFollowsEncodings: a secret printed through b64enc, upper-cased, JSON- or
// URL-escaped is masked like the secret itself; one too short to mask is reported, and masks
// nothing (it would reveal itself by blanking every letter it shares with the output).
func TestMaskingFollowsEncodings(t *testing.T) {
	secret := `ghp_Tok"en/with+chars`
	env := &Env{Values: map[string]string{"TOKEN": secret, "PIN": "ab", "PLAIN": "visible"}, Secret: map[string]bool{"TOKEN": true, "PIN": true}}
	out := strings.Join([]string{
		"raw: " + secret,
		"b64: " + base64.StdEncoding.EncodeToString([]byte(secret)),
		"upper: " + strings.ToUpper(secret),
		`json: "ghp_Tok\"en/with+chars"`,
		"url: ghp_Tok%22en%2Fwith%2Bchars",
		"plain: visible, a cab",
	}, "\n")
	masked := MaskString(out, env.SecretValues())
	for _, leak := range []string{"ghp_", "Z2hw", "GHP_", "Tok"} {
		if strings.Contains(masked, leak) {
			t.Errorf("%q leaks through:\n%s", leak, masked)
		}
	}
	if !strings.Contains(masked, "plain: visible, a cab") {
		t.Errorf("text that is no secret was masked:\n%s", masked)
	}
	if short := env.ShortSecrets(); len(short) != 1 || short[0] != "PIN" {
		t.Errorf("short secrets %v", short)
	}
}
