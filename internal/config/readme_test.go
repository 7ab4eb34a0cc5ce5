package config

import (
	"os"
	"strings"
	"testing"
)

// README's configuration table must list every setting.
func TestReadmeListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings() {
		for _, want := range []string{"`--" + FlagName(s.key) + "`", "`" + EnvName(s.key) + "`"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("README lacks %s", want)
			}
		}
	}
}
