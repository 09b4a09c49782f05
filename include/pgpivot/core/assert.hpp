// Invariant checks (STYLE.md 3.4). A broken invariant is a bug in pgpivot, not bad
// input: PGPIVOT_CHECK aborts with the location in every build, PGPIVOT_ASSERT only in
// debug builds. Bad input is handled with Result values, never with these.
#pragma once

#include <cstdio>
#include <cstdlib>

#define PGPIVOT_CHECK(cond)                                                                        \
  do {                                                                                             \
    if (!(cond)) [[unlikely]] {                                                                    \
      std::fprintf(stderr, "pgpivot: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                                \
    }                                                                                              \
  } while (false)

#ifdef NDEBUG
#define PGPIVOT_ASSERT(cond) \
  do {                       \
  } while (false)
#else
#define PGPIVOT_ASSERT(cond) PGPIVOT_CHECK(cond)
#endif
