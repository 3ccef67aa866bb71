package auth

import "github.com/pms/pms/pkg/platform/validate"

// parseID checks that s is a UUID and returns it in canonical lower-case form.
func parseID(s string) (string, error) { return validate.ID(s, "id") }
