// Package providers builds the provider clients of push credentials:
// *apns.Client, *fcm.Client and *webpush.Sender from a decrypted
// credential (push.OpenedCredential). It exists because push cannot
// import its provider packages (they import push for Result); main passes
// Builder to push in push.Deps.ClientBuilder.
package providers

import (
	"errors"
	"net/http"

	"github.com/sockudo/sockudo/internal/netguard"
	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/apns"
	"github.com/sockudo/sockudo/push/fcm"
	"github.com/sockudo/sockudo/push/webpush"
)

// Builder returns a push.ClientBuilder for the operator's provider
// settings in cfg (APNsEndpoint, FCMEndpoint, FCMTokenURL,
// AllowLocalWebPush). Every Web Push sender it makes shares one HTTP client
// (webpush.NewHTTPClient), and every FCM client whose token endpoint the
// operator did not choose fetches its access tokens through one client that
// refuses private addresses and redirects (netguard); APNs and FCM sends
// each have their own HTTP/2 transport. It starts no goroutines.
func Builder(cfg push.Config) push.ClientBuilder {
	web := webpush.NewHTTPClient(webpush.HTTPConfig{AllowLocal: cfg.AllowLocalWebPush})
	token := netguard.NewHTTPClient(netguard.Config{Timeout: fcm.DefaultTimeout})
	return func(oc push.OpenedCredential) (any, error) {
		return build(cfg, web, token, oc)
	}
}

func build(cfg push.Config, web, token *http.Client, oc push.OpenedCredential) (any, error) {
	switch {
	case oc.APNs != nil:
		return apns.New(apns.Config{TeamID: oc.APNs.TeamID, KeyID: oc.APNs.KeyID, Key: oc.APNs.P8,
			Endpoint: cfg.APNsEndpoint})
	case oc.FCM != nil:
		tokenURL, override, err := push.FCMTokenURL(cfg, oc.FCM.ServiceAccount)
		if err != nil {
			return nil, err
		}
		fc := fcm.Config{ServiceAccount: oc.FCM.ServiceAccount, Endpoint: cfg.FCMEndpoint, TokenURL: tokenURL}
		if !override {
			fc.TokenHTTPClient = token
		}
		return fcm.New(fc)
	case oc.WebPush != nil:
		key, err := webpush.ParseVAPIDKey(oc.WebPush.PrivateKey)
		if err != nil {
			return nil, err
		}
		return webpush.New(webpush.Config{Key: key, Subject: oc.WebPush.Subject, AllowLocal: cfg.AllowLocalWebPush,
			AllowedHosts: cfg.WebAllowedHosts}, web)
	}
	return nil, errors.New("providers: empty credential")
}
