package gateway

import "github.com/switchyard/switchyard/plan"

// The options the gateway itself reads from an app's URL (package plan documents each).
const (
	// PassHeaderOption names a response header that must come with a pass status for the answer to pass
	// on (see delegate.App.PassHeader).
	PassHeaderOption = plan.PassHeaderOption
	// EncodedSlashOption lets "%2F" in a path reach the route's app unchanged (docs/paths.md).
	EncodedSlashOption = plan.EncodedSlashOption
	// HTTPSRedirectOption, set to false, serves the route on the plain HTTP listener too.
	HTTPSRedirectOption = plan.HTTPSRedirectOption
	// PrefixHeaderOption announces the route's prefix to an HTTP app in the form its server reads.
	PrefixHeaderOption = plan.PrefixHeaderOption
)
