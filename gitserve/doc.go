// Package gitserve is the optional embedded SSH server that lets a teammate clone and push
// the workspace with the ordinary git client, by public key, with per-key roles.
package gitserve
