/* The library at the end of runpath_host's chain. */
__attribute__((visibility("default"))) int leaf_value(void) { return 41; }
