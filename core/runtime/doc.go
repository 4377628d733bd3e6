// Package runtime orchestrates up and down across apps and instances, keeps the local state
// cache, and publishes one observable snapshot that the CLI, the window and the tray read.
package runtime
