// What the CPU training kernels (attention, dropout) share to vectorise on any x86-64 wheel.
//
// Wheels are built for baseline x86-64 (SSE2, no FMA), never -march=native: FASTREGEN_CLONES compiles a
// plain function again for AVX2 and AVX-512 and picks one at load time (GCC / clang function
// multi-versioning, ifunc; Linux x86-64 only, elsewhere the one baseline build). Templates cannot be
// cloned: a cloned function calls FASTREGEN_INLINE templates, which are then compiled for its target.
// FASTREGEN_SIMD / FASTREGEN_SIMD_REDUCE mark loops whose lanes are independent (or a reduction), so
// the compiler vectorises them without -ffast-math; without OpenMP they are plain loops.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define FASTREGEN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FASTREGEN_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FASTREGEN_INLINE inline __attribute__((always_inline))
#else
#define FASTREGEN_INLINE inline
#endif

#define FASTREGEN_PRAGMA(x) _Pragma(#x)
#if FASTREGEN_HAVE_OPENMP
#define FASTREGEN_SIMD FASTREGEN_PRAGMA(omp simd)
#define FASTREGEN_SIMD_REDUCE(op, var) FASTREGEN_PRAGMA(omp simd reduction(op : var))
#else
#define FASTREGEN_SIMD
#define FASTREGEN_SIMD_REDUCE(op, var)
#endif
