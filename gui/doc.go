// Package gui is the Gio window and the system-tray icon. It reads the runtime snapshot and
// calls core functions; it holds no business state.
package gui
