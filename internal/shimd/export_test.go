package shimd

// For the external tests of this package (package shimd_test).
var BuildShimForTest = buildShim
