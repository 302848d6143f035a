/* advisor.parse._fast_blocks: the hot loop of the perf script parser, in C.

   count_blocks(text, line_no, head_cache, block_cache, leaf_cache, counts, one_block)
       -> (line_no, hits, time_min, time_max)

   It counts the samples of `text` that the caches of the parser's fast path already know (the
   event line without its time in `head_cache`; the frame lines in `block_cache`, or without
   the leaf's address in `leaf_cache`) and hands every other block to Python's `one_block`.
   It does what `advisor.parse.perf_script.py_count_blocks`, the pure-Python reference used
   where this module was not built, does, step for step (tests/test_fast_blocks.py compares
   the two), but reads the blocks in place: `text` is not split into a list of copies (that
   split took a fifth of the parse). Why it exists: at 999 Hz the Python loop took about as
   much CPU as `perf script` itself, so on a busy machine the parser fell behind perf
   (bench/README.md has the figures).
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define TIME_DIGITS 12 /* as the parser's _TIME regex: [0-9]{1,12}\.[0-9]{1,12} */

static PyObject *colon_space; /* ": " */
static PyObject *one;

/* A sample's time, as perf printed it, and its value as two integers that order times as
   their values do: the seconds, and the fraction's digits padded to TIME_DIGITS. Only the
   least and the greatest time become floats (float() of their text), at the end: converting
   every sample's took ~3% of the parse, and a correctly rounded conversion keeps the order. */
typedef struct {
    char text[2 * TIME_DIGITS + 2];
    unsigned long long seconds, fraction;
} sample_time;

static int
time_before(const sample_time *a, const sample_time *b)
{
    return a->seconds < b->seconds || (a->seconds == b->seconds && a->fraction < b->fraction);
}

/* Whether s[start:end] is [0-9]{1,12}\.[0-9]{1,12}; if so, *t holds its text (NUL-terminated)
   and its value, read in the same pass. */
static int
read_time(PyObject *s, Py_ssize_t start, Py_ssize_t end, sample_time *t)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t n = end - start, dot = -1;
    unsigned long long value = 0;
    if (n < 3 || n > 2 * TIME_DIGITS + 1)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, start + i);
        if (c == '.' && dot < 0) {
            dot = i;
            t->seconds = value;
            value = 0;
        } else if (c < '0' || c > '9') {
            return 0;
        } else {
            value = value * 10 + (c - '0');
        }
        t->text[i] = (char)c;
    }
    t->text[n] = '\0';
    Py_ssize_t decimals = n - dot - 1;
    if (dot < 1 || dot > TIME_DIGITS || decimals < 1 || decimals > TIME_DIGITS)
        return 0;
    for (; decimals < TIME_DIGITS; decimals++)
        value *= 10; /* the fraction's digits padded: 1.5 and 1.50 are one value */
    t->fraction = value;
    return 1;
}

static int
is_hex(Py_UCS4 c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Where s[start:] goes on after the match of the parser's _ADDRESS regex (white space, a hex
   address, one space: "[ \t]+[0-9a-fA-F]+ "), or -1 if it does not match there. */
static Py_ssize_t
after_address(PyObject *s, Py_ssize_t start, Py_ssize_t end)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t i = start;
    while (i < end && (PyUnicode_READ(kind, data, i) == ' ' || PyUnicode_READ(kind, data, i) == '\t'))
        i++;
    Py_ssize_t hex = i;
    while (i < end && is_hex(PyUnicode_READ(kind, data, i)))
        i++;
    if (hex == start || i == hex || i >= end || PyUnicode_READ(kind, data, i) != ' ')
        return -1;
    return i + 1;
}

/* Where the next "\n\n" in s[start:end] is, or -1; as str.split("\n\n") finds them. */
static Py_ssize_t
find_blank(PyObject *s, Py_ssize_t start, Py_ssize_t end)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    if (kind == PyUnicode_1BYTE_KIND) { /* nearly always: memchr from line to line */
        const Py_UCS1 *base = data, *p = base + start, *stop = base + end;
        while (p < stop) {
            const Py_UCS1 *nl = memchr(p, '\n', stop - p);
            if (nl == NULL || nl + 1 >= stop)
                return -1;
            if (nl[1] == '\n')
                return nl - base;
            p = nl + 2;
        }
        return -1;
    }
    for (Py_ssize_t i = start; i + 1 < end; i++)
        if (PyUnicode_READ(kind, data, i) == '\n' && PyUnicode_READ(kind, data, i + 1) == '\n')
            return i;
    return -1;
}

/* cache.get(key), checked to be what the caches hold (a tuple (int, ...): head_cache's
   (id, event, groups), block_cache's and leaf_cache's (stack id, newlines)).
   1: found, *value borrowed; 0: not there; -1: an error is set. */
static int
cache_get(PyObject *cache, PyObject *key, const char *name, PyObject **value)
{
    *value = PyDict_GetItemWithError(cache, key);
    if (*value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (PyTuple_Check(*value) && PyTuple_GET_SIZE(*value) >= 2 && PyLong_Check(PyTuple_GET_ITEM(*value, 0)))
        return 1;
    PyErr_Format(PyExc_TypeError, "count_blocks: %s holds a value that is not a tuple (int, ...)", name);
    return -1;
}

static PyObject *
count_blocks(PyObject *module, PyObject *args)
{
    PyObject *text, *head_cache, *block_cache, *leaf_cache, *counts, *one_block;
    long long line_no;
    (void)module;
    if (!PyArg_ParseTuple(args, "ULO!O!O!O!O:count_blocks", &text, &line_no, &PyDict_Type, &head_cache,
                          &PyDict_Type, &block_cache, &PyDict_Type, &leaf_cache, &PyDict_Type, &counts,
                          &one_block))
        return NULL;
    if (block_cache == leaf_cache) { /* block_cache.put() must not touch what leaf_cache holds */
        PyErr_SetString(PyExc_ValueError, "count_blocks: block_cache and leaf_cache are one dict");
        return NULL;
    }
    int have_time = 0;
    sample_time now, tmin, tmax;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), hits = 0, at = 0;
    while (at <= n) {
        /* the block: text[at:len], up to the next "\n\n" or the end */
        Py_ssize_t blank = find_blank(text, at, n), len = blank >= 0 ? blank : n;
        /* line, _, body = block.partition("\n") */
        Py_ssize_t nl = PyUnicode_FindChar(text, '\n', at, len, 1);
        if (nl == -2)
            return NULL;
        Py_ssize_t line_end = nl >= 0 ? nl : len, body_start = nl >= 0 ? nl + 1 : len;
        /* left, _, right = line.partition(": ") */
        Py_ssize_t colon = PyUnicode_Find(text, colon_space, at, line_end, 1);
        if (colon == -2)
            return NULL;
        Py_ssize_t left_end = colon >= 0 ? colon : line_end, right_start = colon >= 0 ? colon + 2 : line_end;
        /* prefix, _, time = left.rpartition(" ") */
        Py_ssize_t space = PyUnicode_FindChar(text, ' ', at, left_end, -1);
        if (space == -2)
            return NULL;
        Py_ssize_t prefix_end = space >= 0 ? space : at, time_start = space >= 0 ? space + 1 : at;
        /* head = head_cache.get((prefix, right)) */
        PyObject *key = PyTuple_New(2);
        if (key == NULL)
            return NULL;
        PyObject *prefix = PyUnicode_Substring(text, at, prefix_end);
        PyTuple_SET_ITEM(key, 0, prefix);
        PyObject *right = prefix ? PyUnicode_Substring(text, right_start, line_end) : NULL;
        PyTuple_SET_ITEM(key, 1, right);
        if (right == NULL) {
            Py_DECREF(key);
            return NULL;
        }
        PyObject *head, *hit;
        int found = cache_get(head_cache, key, "head_cache", &head);
        Py_DECREF(key);
        if (found < 0)
            return NULL;
        if (!found || !read_time(text, time_start, left_end, &now))
            goto miss;
        /* hit = block_cache.get(body) */
        PyObject *body = PyUnicode_Substring(text, body_start, len);
        if (body == NULL)
            return NULL;
        found = cache_get(block_cache, body, "block_cache", &hit);
        Py_ssize_t leaf = found ? -1 : after_address(text, body_start, len);
        if (leaf >= 0 && PyUnicode_FindChar(text, '\n', leaf, len, 1) >= 0) {
            /* hit = leaf_cache.get(body without the leaf's address); then block_cache.put(body,
               hit, len(body) + 100) as _Parser.new_body does, so that the next sample with this
               body is found at once (put may empty block_cache, never leaf_cache: `hit` lives) */
            PyObject *leaf_key = PyUnicode_Substring(text, leaf, len);
            found = leaf_key ? cache_get(leaf_cache, leaf_key, "leaf_cache", &hit) : -1;
            Py_XDECREF(leaf_key);
            if (found > 0) {
                PyObject *done = PyObject_CallMethod(block_cache, "put", "OOn", body, hit, len - body_start + 100);
                found = done ? 1 : -1;
                Py_XDECREF(done);
            }
        }
        Py_DECREF(body);
        if (found < 0)
            return NULL;
        if (!found)
            goto miss;
        long long newlines = PyLong_AsLongLong(PyTuple_GET_ITEM(hit, 1));
        if (newlines == -1 && PyErr_Occurred())
            return NULL;
        if (!have_time) {
            tmin = tmax = now;
            have_time = 1;
        } else if (time_before(&tmax, &now)) {
            tmax = now;
        } else if (time_before(&now, &tmin)) {
            tmin = now;
        }
        /* counts[(head[0], hit[0])] += 1 */
        PyObject *count_key = PyTuple_Pack(2, PyTuple_GET_ITEM(head, 0), PyTuple_GET_ITEM(hit, 0));
        if (count_key == NULL)
            return NULL;
        PyObject *old = PyDict_GetItemWithError(counts, count_key); /* borrowed */
        PyObject *new = old ? PyNumber_Add(old, one) : PyErr_Occurred() ? NULL : Py_NewRef(one);
        if (new == NULL || PyDict_SetItem(counts, count_key, new) < 0) {
            Py_XDECREF(new);
            Py_DECREF(count_key);
            return NULL;
        }
        Py_DECREF(new);
        Py_DECREF(count_key);
        line_no += newlines + 3; /* the event line, the body's lines, the blank line */
        hits++;
        goto next;
    miss: {
        /* line_no = one_block(block, line_no) */
        PyObject *block = PyUnicode_Substring(text, at, len);
        if (block == NULL)
            return NULL;
        PyObject *next_line = PyObject_CallFunction(one_block, "OL", block, line_no);
        Py_DECREF(block);
        if (next_line == NULL)
            return NULL;
        line_no = PyLong_AsLongLong(next_line);
        Py_DECREF(next_line);
        if (line_no == -1 && PyErr_Occurred())
            return NULL;
    }
    next:
        at = blank >= 0 ? blank + 2 : n + 1;
    }
    if (!have_time)
        return Py_BuildValue("(LnOO)", line_no, hits, Py_None, Py_None);
    /* float(time): the same conversion as float() of a str */
    double least = PyOS_string_to_double(tmin.text, NULL, NULL);
    if (least == -1.0 && PyErr_Occurred())
        return NULL;
    double greatest = PyOS_string_to_double(tmax.text, NULL, NULL);
    if (greatest == -1.0 && PyErr_Occurred())
        return NULL;
    return Py_BuildValue("(Lndd)", line_no, hits, least, greatest);
}

static PyMethodDef methods[] = {
    {"count_blocks", count_blocks, METH_VARARGS,
     "Count the samples of text that the caches know; hand every other block to one_block."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fast_blocks", "The perf script parser's hot loop in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fast_blocks(void)
{
    colon_space = PyUnicode_InternFromString(": ");
    one = PyLong_FromLong(1);
    if (colon_space == NULL || one == NULL)
        return NULL;
    return PyModule_Create(&module);
}
