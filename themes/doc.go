// Package themes holds the palettes (light and dark) the GUI draws with; the GUI never
// writes a colour literal.
package themes
