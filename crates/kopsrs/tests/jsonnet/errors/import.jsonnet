// An import not found in the search path.
(import 'missing.libsonnet') { a: 1 }
