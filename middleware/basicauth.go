package middleware

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// BasicAuthOptions configures BasicAuth.
type BasicAuthOptions struct {
	// Users maps user names to bcrypt hashes ("$2a$10$..." or "$2y$...", as htpasswd -B writes them).
	Users map[string]string
	// Realm is shown by browsers; "" means "restricted".
	Realm string
	// KeepAuthorization passes the Authorization header on to the application; by default it is removed,
	// so the application never sees (or logs) the password.
	KeepAuthorization bool
	// UserHeader, when set, carries the authenticated user name to the application (X-Auth-User). A
	// client-sent header of that name is always removed first, so it cannot be forged.
	UserHeader string
}

// dummyHash is compared against when the user is unknown, so an unknown user costs the same bcrypt time as
// a wrong password and response timing does not reveal which user names exist.
// (A fixed hash of a random string at cost 10, bcrypt's default: generating one would cost every program
// importing this package a bcrypt round at start-up.)
var dummyHash = []byte("$2a$10$gDUVPb124/rZUBbPfejumePLni5zgMYVK/A5kJL7ZldW/wq.GYdk6")

// BasicAuth returns middleware requiring HTTP Basic credentials checked against bcrypt hashes. Failures get
// 401 with WWW-Authenticate: Basic realm="...". User names are compared in constant time against every
// configured user.
func BasicAuth(o BasicAuthOptions) (func(http.Handler) http.Handler, error) {
	if len(o.Users) == 0 {
		return nil, fmt.Errorf("no users")
	}
	type user struct {
		name string
		hash []byte
	}
	var users []user
	for name, h := range o.Users {
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return nil, fmt.Errorf("user %q: the password is not a bcrypt hash (make one with htpasswd -nB %s)", name, name)
		}
		users = append(users, user{name, []byte(h)})
	}
	if o.Realm == "" {
		o.Realm = "restricted"
	}
	challenge := "Basic realm=" + strconv.Quote(o.Realm) + `, charset="UTF-8"`
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if o.UserHeader != "" {
				r.Header.Del(o.UserHeader)
			}
			name, pass, ok := r.BasicAuth()
			if ok {
				hash, found := dummyHash, 0
				for _, u := range users {
					if subtle.ConstantTimeCompare([]byte(name), []byte(u.name)) == 1 {
						hash, found = u.hash, 1
					}
				}
				ok = bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil && found == 1
			}
			if !ok {
				w.Header().Set("WWW-Authenticate", challenge)
				http.Error(w, "401 unauthorized", http.StatusUnauthorized)
				return
			}
			if !o.KeepAuthorization {
				r.Header.Del("Authorization")
			}
			if o.UserHeader != "" {
				r.Header.Set(o.UserHeader, name)
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

func buildBasicAuth(p *params, _ BuildEnv) (func(http.Handler) http.Handler, error) {
	list, err := p.Required("users", "NAME:BCRYPT_HASH pairs separated by commas")
	if err != nil {
		return nil, err
	}
	users := map[string]string{}
	for _, u := range splitList(list) {
		name, hash, ok := strings.Cut(u, ":")
		if !ok || name == "" || hash == "" {
			return nil, fmt.Errorf("parameter users: an entry is not NAME:BCRYPT_HASH (make one with htpasswd -nB NAME)")
		}
		users[name] = hash
	}
	keep, err := p.Bool("keep_authorization", false)
	if err != nil {
		return nil, err
	}
	uh := p.String("user_header", "")
	if uh != "" && !validHeaderName(uh) {
		return nil, p.errf("user_header", uh, "a header name such as X-Auth-User")
	}
	mw, err := BasicAuth(BasicAuthOptions{Users: users, Realm: p.String("realm", ""), KeepAuthorization: keep, UserHeader: uh})
	if err != nil {
		return nil, fmt.Errorf("parameter users: %v", err)
	}
	return mw, nil
}
