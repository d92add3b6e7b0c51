// Package layout holds no code, only the test that keeps the package table
// of docs/architecture.md and the tree in step: every Go package of the
// module has a row, and each row lists exactly the module's packages and the
// third-party modules that package imports.
package layout
