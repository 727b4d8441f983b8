/* Linear combinations of byte blocks over GF(2^8) (polynomial x^8+x^4+x^3+x^2+1, zfec's),
 * the one kernel of Reed-Solomon encoding and decoding.
 *
 * Why hand-written: zfec defines our code and stays its reference, but its kernel looks up a
 * 256x256 table byte by byte (~0.7 GB/s here, the costliest step of a put), and no maintained
 * Python package offers a faster GF(2^8) region kernel. Three kernels, picked at load time:
 *   gfni      x86-64 with GFNI: one affine instruction multiplies 32 bytes (~15x zfec);
 *   avx2      x86-64 with AVX2: split-nibble pshufb products (~10x zfec);
 *   portable  any CPU or compiler: eight bytes at a time with shifts and masks ("xtime"),
 *             which compilers vectorise (~3x zfec).
 * None indexes memory by the data, so none leaves a cache-timing trace of the plaintext.
 *
 * combine(coef, rows, blocks) -> list of `rows` bytes objects, where output r is
 * sum over j of coef[r*k + j] * blocks[j] (k = len(blocks), all blocks the same length).
 * The GIL is released while it runs. kernel([name]) reads or picks the kernel (tests run
 * each one against zfec); kernels() lists those this CPU can run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCKS 256 /* zfec's limit on n */
#define LANES 256      /* 64-bit words per tile: 8 powers x 2 KiB of scratch, stays in L1 */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* Eight field elements times x: shift each byte, reduce the ones that overflowed. */
static inline uint64_t xtime8(uint64_t v) {
    uint64_t high = (v >> 7) & 0x0101010101010101ULL;
    /* (high << 8) - high is 0xff in each byte whose top bit was set (no multiply: AVX2 has
     * no 64-bit vector multiply). */
    return ((v & 0x7f7f7f7f7f7f7f7fULL) << 1) ^ (((high << 8) - high) & 0x1d1d1d1d1d1d1d1dULL);
}

CLONES static void combine_words(const uint8_t *coef, int rows, int k,
                                 const uint8_t *const *in, uint8_t *const *out,
                                 size_t nwords) {
    uint64_t power[8][LANES]; /* power[b][w] = x^b * word w of the current input */
    for (size_t base = 0; base < nwords; base += LANES) {
        size_t n = nwords - base < LANES ? nwords - base : LANES;
        for (int r = 0; r < rows; r++)
            memset(out[r] + base * 8, 0, n * 8);
        for (int j = 0; j < k; j++) {
            const uint8_t *src = in[j] + base * 8;
            for (size_t w = 0; w < n; w++)
                memcpy(&power[0][w], src + 8 * w, 8);
            for (int b = 1; b < 8; b++)
                for (size_t w = 0; w < n; w++)
                    power[b][w] = xtime8(power[b - 1][w]);
            for (int r = 0; r < rows; r++) {
                uint8_t c = coef[r * k + j];
                uint64_t m[8]; /* all ones where bit b of c is set: no data-dependent branch */
                for (int b = 0; b < 8; b++)
                    m[b] = (uint64_t)0 - (uint64_t)((c >> b) & 1);
                uint8_t *dst = out[r] + base * 8;
                for (size_t w = 0; w < n; w++) {
                    uint64_t acc;
                    memcpy(&acc, dst + 8 * w, 8);
                    acc ^= (power[0][w] & m[0]) ^ (power[1][w] & m[1]) ^
                           (power[2][w] & m[2]) ^ (power[3][w] & m[3]) ^
                           (power[4][w] & m[4]) ^ (power[5][w] & m[5]) ^
                           (power[6][w] & m[6]) ^ (power[7][w] & m[7]);
                    memcpy(dst + 8 * w, &acc, 8);
                }
            }
        }
    }
}

/* Whole words through the kernel; the last len % 8 bytes through it as one padded word. */
static void combine_portable(const uint8_t *coef, int rows, int k, const uint8_t *const *in,
                             uint8_t *const *out, size_t len) {
    size_t nwords = len / 8, tail = len % 8;
    combine_words(coef, rows, k, in, out, nwords);
    if (tail) {
        uint8_t in_words[MAX_BLOCKS][8], out_words[MAX_BLOCKS][8];
        const uint8_t *in_ptr[MAX_BLOCKS];
        uint8_t *out_ptr[MAX_BLOCKS];
        for (int j = 0; j < k; j++) {
            memset(in_words[j], 0, 8);
            memcpy(in_words[j], in[j] + nwords * 8, tail);
            in_ptr[j] = in_words[j];
        }
        for (int r = 0; r < rows; r++)
            out_ptr[r] = out_words[r];
        combine_words(coef, rows, k, in_ptr, out_ptr, 1);
        for (int r = 0; r < rows; r++)
            memcpy(out[r] + nwords * 8, out_words[r], tail);
    }
}

static uint8_t gf_mul(uint8_t a, uint8_t b) {
    uint8_t p = 0;
    for (int i = 0; i < 8; i++) {
        p ^= (uint8_t)(-(b & 1) & a);
        b >>= 1;
        a = (uint8_t)((a << 1) ^ (-(a >> 7) & 0x1d));
    }
    return p;
}

/* x86-64 with GCC or Clang: whole-vector kernels picked at run time. The portable kernel
 * above finishes the last len % 32 bytes and serves every other CPU and compiler. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1

/* Split nibbles: c*x = c*(x & 15) ^ c*(x >> 4 << 4), each a 16-entry shuffle (SSSE3's
 * pshufb, constant time: the "table" is a register). */
__attribute__((target("avx2"))) static void combine_avx2(
    const uint8_t *coef, int rows, int k, const uint8_t *const *in, uint8_t *const *out,
    size_t len, uint8_t *tables) {
    for (int t = 0; t < rows * k; t++)
        for (int i = 0; i < 16; i++) {
            tables[t * 64 + i] = tables[t * 64 + 16 + i] = gf_mul(coef[t], (uint8_t)i);
            tables[t * 64 + 32 + i] = tables[t * 64 + 48 + i] =
                gf_mul(coef[t], (uint8_t)(i << 4));
        }
    const __m256i nibble = _mm256_set1_epi8(0x0f);
    for (size_t pos = 0; pos + 32 <= len; pos += 32)
        for (int r = 0; r < rows; r++) {
            __m256i acc = _mm256_setzero_si256();
            for (int j = 0; j < k; j++) {
                const uint8_t *t = tables + (size_t)(r * k + j) * 64;
                __m256i x = _mm256_loadu_si256((const __m256i *)(in[j] + pos));
                __m256i lo = _mm256_and_si256(x, nibble);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble);
                acc = _mm256_xor_si256(acc, _mm256_shuffle_epi8(
                    _mm256_loadu_si256((const __m256i *)t), lo));
                acc = _mm256_xor_si256(acc, _mm256_shuffle_epi8(
                    _mm256_loadu_si256((const __m256i *)(t + 32)), hi));
            }
            _mm256_storeu_si256((__m256i *)(out[r] + pos), acc);
        }
}

#if !defined(__clang__)
#define HAVE_GFNI 1
/* GFNI: multiplying by c is linear over GF(2), so one affine instruction per 32 bytes does
 * it, whatever the field polynomial. Row i of the bit matrix (byte 7-i) says which input
 * bits make output bit i: bit j of row i is bit i of c*2^j. */
static uint64_t gfni_matrix(uint8_t c) {
    uint64_t m = 0;
    for (int i = 0; i < 8; i++) {
        uint8_t row = 0;
        for (int j = 0; j < 8; j++)
            row |= (uint8_t)(((gf_mul(c, (uint8_t)(1 << j)) >> i) & 1) << j);
        m |= (uint64_t)row << (8 * (7 - i));
    }
    return m;
}

__attribute__((target("avx2,gfni"))) static void combine_gfni(
    const uint8_t *coef, int rows, int k, const uint8_t *const *in, uint8_t *const *out,
    size_t len, uint8_t *tables) {
    uint64_t *mats = (uint64_t *)tables;
    for (int t = 0; t < rows * k; t++)
        mats[t] = gfni_matrix(coef[t]);
    for (size_t pos = 0; pos + 32 <= len; pos += 32)
        for (int r = 0; r < rows; r++) {
            __m256i acc = _mm256_setzero_si256();
            for (int j = 0; j < k; j++) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(in[j] + pos));
                __m256i a = _mm256_set1_epi64x((long long)mats[r * k + j]);
                acc = _mm256_xor_si256(acc, _mm256_gf2p8affine_epi64_epi8(x, a, 0));
            }
            _mm256_storeu_si256((__m256i *)(out[r] + pos), acc);
        }
}
#endif
#endif

enum { PORTABLE, AVX2, GFNI };
static const char *const kernel_names[] = {"portable", "avx2", "gfni"};
static int kernel_best = PORTABLE, kernel_used = PORTABLE;

static void detect(void) {
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        kernel_best = AVX2;
#ifdef HAVE_GFNI
    if (kernel_best == AVX2 && __builtin_cpu_supports("gfni"))
        kernel_best = GFNI;
#endif
#endif
    kernel_used = kernel_best;
}

/* Returns -1 when the table scratch cannot be allocated (the caller raises MemoryError). */
static int combine(int kernel, const uint8_t *coef, int rows, int k, const uint8_t *const *in,
                   uint8_t *const *out, size_t len) {
    size_t done = 0;
#ifdef HAVE_X86
    if (kernel != PORTABLE && len >= 32 && rows > 0) {
        uint8_t *tables = malloc((size_t)rows * k * 64);
        if (tables == NULL)
            return -1;
#ifdef HAVE_GFNI
        if (kernel == GFNI)
            combine_gfni(coef, rows, k, in, out, len, tables);
        else
#endif
            combine_avx2(coef, rows, k, in, out, len, tables);
        free(tables);
        done = len / 32 * 32;
    }
#endif
    if (done < len) {
        const uint8_t *in_rest[MAX_BLOCKS];
        uint8_t *out_rest[MAX_BLOCKS];
        for (int j = 0; j < k; j++)
            in_rest[j] = in[j] + done;
        for (int r = 0; r < rows; r++)
            out_rest[r] = out[r] + done;
        combine_portable(coef, rows, k, in_rest, out_rest, len - done);
    }
    return 0;
}

static PyObject *py_kernel(PyObject *self, PyObject *args) {
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|z:kernel", &name))
        return NULL;
    if (name != NULL) {
        int found = -1;
        for (int i = 0; i <= kernel_best; i++)
            if (strcmp(name, kernel_names[i]) == 0)
                found = i;
        if (found < 0)
            return PyErr_Format(PyExc_ValueError, "kernel %s is not available here", name);
        kernel_used = found;
    }
    return PyUnicode_FromString(kernel_names[kernel_used]);
}

static PyObject *py_kernels(PyObject *self, PyObject *unused) {
    PyObject *list = PyList_New(0);
    for (int i = 0; list != NULL && i <= kernel_best; i++) {
        PyObject *name = PyUnicode_FromString(kernel_names[i]);
        if (name == NULL || PyList_Append(list, name) < 0)
            Py_CLEAR(list);
        Py_XDECREF(name);
    }
    return list;
}

static PyObject *py_combine(PyObject *self, PyObject *args) {
    Py_buffer coef;
    int rows;
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "y*iO:combine", &coef, &rows, &seq))
        return NULL;
    PyObject *result = NULL, *fast = NULL;
    Py_buffer views[MAX_BLOCKS];
    Py_ssize_t k = 0, got = 0, len = 0;
    const uint8_t *in[MAX_BLOCKS];
    uint8_t *out[MAX_BLOCKS];

    fast = PySequence_Fast(seq, "blocks must be a sequence");
    if (fast == NULL)
        goto done;
    k = PySequence_Fast_GET_SIZE(fast);
    if (k < 1 || k > MAX_BLOCKS || rows < 0 || rows > MAX_BLOCKS) {
        PyErr_SetString(PyExc_ValueError, "between 1 and 256 blocks and at most 256 rows");
        goto done;
    }
    if (coef.len != (Py_ssize_t)rows * k) {
        PyErr_SetString(PyExc_ValueError, "coef must hold rows * len(blocks) bytes");
        goto done;
    }
    for (got = 0; got < k; got++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, got), &views[got],
                               PyBUF_SIMPLE) < 0)
            goto done;
        if (got == 0)
            len = views[0].len;
        if (views[got].len != len) {
            got++;
            PyErr_SetString(PyExc_ValueError, "blocks must all have the same length");
            goto done;
        }
        in[got] = (const uint8_t *)views[got].buf;
    }
    result = PyList_New(rows);
    if (result == NULL)
        goto done;
    for (int r = 0; r < rows; r++) {
        PyObject *block = PyBytes_FromStringAndSize(NULL, len);
        if (block == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        out[r] = (uint8_t *)PyBytes_AS_STRING(block);
        PyList_SET_ITEM(result, r, block);
    }
    int kernel = kernel_used, status;
    Py_BEGIN_ALLOW_THREADS
    status = combine(kernel, (const uint8_t *)coef.buf, rows, (int)k, in, out, (size_t)len);
    Py_END_ALLOW_THREADS
    if (status < 0) {
        Py_CLEAR(result);
        PyErr_NoMemory();
    }

done:
    for (Py_ssize_t j = 0; j < got; j++)
        PyBuffer_Release(&views[j]);
    Py_XDECREF(fast);
    PyBuffer_Release(&coef);
    return result;
}

static PyMethodDef methods[] = {
    {"combine", py_combine, METH_VARARGS,
     "combine(coef, rows, blocks) -> rows linear combinations of blocks over GF(2^8)"},
    {"kernel", py_kernel, METH_VARARGS,
     "kernel([name]) -> the kernel in use; with a name (from kernels()), use that one"},
    {"kernels", py_kernels, METH_NOARGS, "kernels() -> the kernels this CPU can run"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_gf256", "GF(2^8) block combinations for erasure coding.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__gf256(void) {
    detect();
    return PyModule_Create(&module);
}
