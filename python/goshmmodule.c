/* SPDX-License-Identifier: MIT */
/* goshmmodule.c: the CPython extension module `goshm`, libgoshm's zero-copy
 * IPC API (heaps, reference-counted buffers, names, channels) for Python.
 * Overview: shm/overview.h. The C API it wraps: client/include/goshm/goshm.h;
 * the Python API, with examples: python/README.md.
 *
 * Objects and who owns what
 * -------------------------
 *   Heap     one goshm_attach handle (goshm_t). Open until close() (or the
 *            with-block's end, or garbage collection), which releases what
 *            its live Buffers and open Channels hold, then goshm_detach.
 *   Buffer   one reference to a goshm buffer, held by this process through
 *            the Heap's handle: every Buffer object owns exactly one
 *            reference (buf_alloc, buffer_at, retain, Channel.recv each make
 *            a new one), released by close()/release(), the with-block's end,
 *            the finalizer (tp_dealloc), Heap.close(), or moved into a
 *            channel by Channel.send. The buffer protocol exports the
 *            payload as writable bytes; an export (memoryview, numpy array)
 *            keeps the Buffer alive, and while one exists the reference
 *            cannot be released or sent (BufferError, as bytearray refuses to
 *            resize), so no Python object ever points at freed memory.
 *   Channel  one goshm_chan_open handle, closed by close(), the with-block's
 *            end, the finalizer or Heap.close().
 * Buffers and Channels hold a strong reference to their Heap, and the Heap
 * keeps intrusive lists of them (not references) so that close() can reach
 * them. None of these objects refers to arbitrary Python objects, so none
 * takes part in cycle collection.
 *
 * Threads and the GIL
 * -------------------
 * Every state change happens with the GIL held. Calls that may wait (attach,
 * detach, buf_alloc, the name and channel calls that talk to goshmd, send
 * and recv) run without the GIL; while one does, its Heap (and Channel)
 * counts it in `busy`, and close() of either refuses with RuntimeError
 * rather than pull the handle from under the running call. A Buffer being
 * sent is in state SENDING: no other thread may export, release or send it
 * meanwhile. Blocking send and recv wait in slices of SLICE_MS and check for
 * signals between slices, so Ctrl-C interrupts a recv(timeout=None).
 *
 * Errors: the errno of a failed libgoshm call becomes OSError(errno, text,
 * context), which Python turns into its subclass (TimeoutError for
 * ETIMEDOUT, BlockingIOError for EAGAIN, FileNotFoundError for ENOENT,
 * FileExistsError for EEXIST, ConnectionResetError, PermissionError, ...).
 * A missing name is KeyError (name_get, name_del). Use of a closed object
 * is ValueError, as for closed files.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* PyMemberDef, T_OBJECT */

#include <errno.h>   /* ETIMEDOUT, EAGAIN, EINVAL, ENOENT */
#include <limits.h>  /* INT_MAX */
#include <math.h>    /* isnan, ceil */
#include <stdio.h>   /* snprintf */
#include <stdint.h>  /* uint64_t */
#include <string.h>  /* strerror */
#include <time.h>    /* clock_gettime */

#include <goshm/goshm.h>

/* The longest one blocking libgoshm call waits before Python checks for
 * signals (ms). */
#define SLICE_MS 200

/* The buffer header (shm/buf.h): the payload starts GS_BUF_HDR bytes into
 * the heap object, after a gs_buf_hdr_t whose `size` is the bytes asked for
 * at goshm_buf_alloc. The public API has no goshm_buf_size, and a Buffer
 * made from an offset (buffer_at, recv) needs its length: buf_len reads it
 * there, clamped to the object's usable bytes because every attached
 * process can write the header. The module is built in the tree, so the
 * layout is the library's own, not a copy. */
#include "buf.h" /* gs_buf_hdr_t, GS_BUF_HDR */

typedef struct HeapObject HeapObject;
typedef struct BufferObject BufferObject;
typedef struct ChannelObject ChannelObject;

struct HeapObject {
    PyObject_HEAD
    goshm_t *h;              /* NULL once closed */
    Py_ssize_t busy;         /* calls on h running without the GIL */
    BufferObject *bufs;      /* live Buffers (state LIVE or SENDING) */
    ChannelObject *chans;    /* open Channels */
    PyObject *weakreflist;
};

enum { BUF_LIVE, BUF_SENDING, BUF_RELEASED };

struct BufferObject {
    PyObject_HEAD
    HeapObject *heap;        /* strong reference */
    unsigned char *p;        /* the payload in this process; NULL once released */
    goshm_off_t off;         /* the payload's offset (kept after release) */
    Py_ssize_t size;         /* payload bytes */
    Py_ssize_t exports;      /* buffer-protocol exports alive */
    int state;               /* BUF_* */
    BufferObject *next, **pprev; /* in heap->bufs while not RELEASED */
    PyObject *weakreflist;
};

struct ChannelObject {
    PyObject_HEAD
    HeapObject *heap;        /* strong reference */
    goshm_chan_t *c;         /* NULL once closed */
    PyObject *name;          /* str */
    Py_ssize_t busy;         /* send/recv running without the GIL */
    ChannelObject *next, **pprev; /* in heap->chans while open */
    PyObject *weakreflist;
};

static PyTypeObject HeapType, BufferType, ChannelType;

/* ---- helpers ------------------------------------------------------------ */

/* Raise OSError(err, strerror(err), context): Python picks the subclass from
 * err. context (may be NULL) names the socket, name or channel. NULL. */
static PyObject *raise_errno(int err, const char *context)
{
    if (err == 0) err = EIO; /* a failure that did not say why */
    PyObject *args = context ? Py_BuildValue("(iss)", err, strerror(err), context)
                             : Py_BuildValue("(is)", err, strerror(err));
    if (args) {
        PyErr_SetObject(PyExc_OSError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static int heap_check_open(HeapObject *self)
{
    if (!self->h) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed goshm heap");
        return -1;
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A timeout argument in seconds -> milliseconds: None -> -1 (for ever),
 * 0 -> 0 (never block), t > 0 -> ceil(t * 1000), at least 1. 0 or -1 with
 * ValueError/TypeError. */
static int timeout_arg(PyObject *o, int64_t *ms)
{
    if (!o || o == Py_None) {
        *ms = -1;
        return 0;
    }
    double t = PyFloat_AsDouble(o);
    if (t == -1.0 && PyErr_Occurred()) return -1;
    if (isnan(t) || t < 0) {
        PyErr_SetString(PyExc_ValueError, "timeout must be None or a number of seconds >= 0");
        return -1;
    }
    if (t == 0) {
        *ms = 0;
        return 0;
    }
    double m = ceil(t * 1000.0);
    *ms = m > 1e15 ? (int64_t)1e15 : (int64_t)m;
    if (*ms < 1) *ms = 1;
    return 0;
}

/* An offset argument: a Buffer (its offset) or an int >= 0. */
static int offset_arg(PyObject *o, goshm_off_t *off)
{
    if (PyObject_TypeCheck(o, &BufferType)) {
        *off = ((BufferObject *)o)->off;
        return 0;
    }
    PyObject *i = PyNumber_Index(o);
    if (!i) return -1;
    unsigned long long v = PyLong_AsUnsignedLongLong(i);
    Py_DECREF(i);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *off = (goshm_off_t)v;
    return 0;
}

/* The payload length of the live buffer at p, which this process holds a
 * reference to (see BUF_HDR). */
static Py_ssize_t buf_len(goshm_t *h, unsigned char *p)
{
    size_t usable = goshm_usable_size(h, p - GS_BUF_HDR);
    if (usable <= GS_BUF_HDR) return 0;
    uint64_t cap = usable - GS_BUF_HDR;
    const gs_buf_hdr_t *hdr = (const gs_buf_hdr_t *)(const void *)(p - GS_BUF_HDR);
    uint64_t asked = __atomic_load_n(&hdr->size, __ATOMIC_RELAXED); /* a plain field others may scribble */
    uint64_t n = asked <= cap ? asked : cap;
    return n > (uint64_t)PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)n;
}

/* ---- Buffer --------------------------------------------------------------- */

static void buf_link(BufferObject *b)
{
    HeapObject *heap = b->heap;
    b->next = heap->bufs;
    if (b->next) b->next->pprev = &b->next;
    b->pprev = &heap->bufs;
    heap->bufs = b;
}

static void buf_unlink(BufferObject *b)
{
    if (!b->pprev) return;
    *b->pprev = b->next;
    if (b->next) b->next->pprev = b->pprev;
    b->next = NULL;
    b->pprev = NULL;
}

/* A new Buffer owning the reference this process just took on p. On failure
 * (no memory for the object) the reference is released again. */
static PyObject *buf_new(HeapObject *heap, unsigned char *p, Py_ssize_t size)
{
    BufferObject *b = PyObject_New(BufferObject, &BufferType);
    if (!b) {
        goshm_buf_release(heap->h, p);
        return NULL;
    }
    Py_INCREF(heap);
    b->heap = heap;
    b->p = p;
    b->off = goshm_off(heap->h, p);
    b->size = size;
    b->exports = 0;
    b->state = BUF_LIVE;
    b->next = NULL;
    b->pprev = NULL;
    b->weakreflist = NULL;
    buf_link(b);
    return (PyObject *)b;
}

/* Why b cannot give its reference away now: 0 if it can, else -1 with
 * BufferError. what: "release" or "send". */
static int buf_check_movable(BufferObject *b, const char *what)
{
    if (b->state == BUF_SENDING) {
        PyErr_Format(PyExc_BufferError, "cannot %s a goshm buffer another thread is sending", what);
        return -1;
    }
    if (b->exports > 0) {
        PyErr_Format(PyExc_BufferError,
                     "cannot %s a goshm buffer while %zd memoryview(s) or other exports of it exist", what,
                     b->exports);
        return -1;
    }
    return 0;
}

/* Give up b's reference (its state must be LIVE and unexported). The
 * reference is dropped in libgoshm unless the heap is closed already (then
 * goshm_detach dropped it). 0, or -1 with OSError when raise_err (the Buffer
 * is released either way). */
static int buf_drop(BufferObject *b, int raise_err)
{
    unsigned char *p = b->p;
    b->p = NULL;
    b->state = BUF_RELEASED;
    buf_unlink(b);
    if (!b->heap->h || !p) return 0;
    if (goshm_buf_release(b->heap->h, p) != 0) {
        int err = errno;
        if (raise_err) {
            raise_errno(err, "goshm_buf_release");
            return -1;
        }
    }
    return 0;
}

static void Buffer_dealloc(BufferObject *b)
{
    if (b->weakreflist) PyObject_ClearWeakRefs((PyObject *)b);
    if (b->state == BUF_LIVE) {
        /* A release that fails here (EBUSY: a stuck process holds the
         * buffer's lock) is reported as unraisable, not lost in silence. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (buf_drop(b, 1) < 0) PyErr_WriteUnraisable(NULL);
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(b->heap);
    PyObject_Free(b);
}

static int buf_check_live(BufferObject *b)
{
    if (b->state != BUF_LIVE || !b->heap->h) {
        PyErr_SetString(PyExc_ValueError,
                        b->state == BUF_SENDING ? "operation on a goshm buffer being sent"
                                                : "operation on a released goshm buffer");
        return -1;
    }
    return 0;
}

static int Buffer_getbuffer(BufferObject *b, Py_buffer *view, int flags)
{
    if (b->state == BUF_SENDING) {
        PyErr_SetString(PyExc_BufferError, "cannot export a goshm buffer another thread is sending");
        view->obj = NULL;
        return -1;
    }
    if (buf_check_live(b) < 0) {
        view->obj = NULL;
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)b, b->p, b->size, 0, flags) < 0) return -1;
    b->exports++;
    return 0;
}

static void Buffer_releasebuffer(BufferObject *b, Py_buffer *view)
{
    b->exports--;
}

static PyObject *Buffer_release(BufferObject *b, PyObject *unused)
{
    if (b->state == BUF_RELEASED) Py_RETURN_NONE;
    if (buf_check_movable(b, "release") < 0) return NULL;
    if (buf_drop(b, 1) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Buffer_retain(BufferObject *b, PyObject *unused)
{
    if (buf_check_live(b) < 0) return NULL;
    if (goshm_buf_retain(b->heap->h, b->p) != 0) return raise_errno(errno, "goshm_buf_retain");
    return buf_new(b->heap, b->p, b->size);
}

static PyObject *Buffer_enter(BufferObject *b, PyObject *unused)
{
    if (buf_check_live(b) < 0) return NULL;
    Py_INCREF(b);
    return (PyObject *)b;
}

static PyObject *Buffer_exit(BufferObject *b, PyObject *args)
{
    return Buffer_release(b, NULL);
}

static PyObject *Buffer_get_offset(BufferObject *b, void *unused)
{
    return PyLong_FromUnsignedLongLong(b->off);
}

static PyObject *Buffer_get_size(BufferObject *b, void *unused)
{
    return PyLong_FromSsize_t(b->size);
}

static PyObject *Buffer_get_refs(BufferObject *b, void *unused)
{
    if (buf_check_live(b) < 0) return NULL;
    uint32_t n = goshm_buf_refs(b->heap->h, b->p);
    if (n == 0) return raise_errno(errno, "goshm_buf_refs");
    return PyLong_FromUnsignedLong(n);
}

static PyObject *Buffer_get_closed(BufferObject *b, void *unused)
{
    return PyBool_FromLong(b->state == BUF_RELEASED || !b->heap->h);
}

static PyObject *Buffer_get_heap(BufferObject *b, void *unused)
{
    Py_INCREF(b->heap);
    return (PyObject *)b->heap;
}

static Py_ssize_t Buffer_length(BufferObject *b)
{
    return b->size;
}

static PyObject *Buffer_repr(BufferObject *b)
{
    const char *st = b->state == BUF_LIVE && b->heap->h ? "live" : b->state == BUF_SENDING ? "sending" : "released";
    return PyUnicode_FromFormat("<goshm.Buffer offset=%llu size=%zd %s>", (unsigned long long)b->off, b->size, st);
}

static PyMethodDef Buffer_methods[] = {
    {"release", (PyCFunction)Buffer_release, METH_NOARGS,
     "release($self, /)\n--\n\nDrop the reference this object holds (goshm_buf_release); the buffer is freed "
     "when the last reference in any process goes. Idempotent. BufferError while a memoryview or "
     "another export of it exists."},
    {"close", (PyCFunction)Buffer_release, METH_NOARGS, "close($self, /)\n--\n\nThe same as release()."},
    {"retain", (PyCFunction)Buffer_retain, METH_NOARGS,
     "retain($self, /)\n--\n\nTake one more reference to the same buffer (goshm_buf_retain) and return it as "
     "a new Buffer object, which owns it: for example one per channel to fan a buffer out."},
    {"__enter__", (PyCFunction)Buffer_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Buffer_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Buffer_getset[] = {
    {"offset", (getter)Buffer_get_offset, NULL,
     "The payload's offset in the heap: the same number in every process attached to it.", NULL},
    {"size", (getter)Buffer_get_size, NULL, "The payload's length in bytes (len(buffer)).", NULL},
    {"refs", (getter)Buffer_get_refs, NULL,
     "The buffer's references now, in every process and in channels (goshm_buf_refs).", NULL},
    {"closed", (getter)Buffer_get_closed, NULL,
     "True once this object's reference is released or sent (or its heap closed).", NULL},
    {"heap", (getter)Buffer_get_heap, NULL, "The Heap this buffer belongs to.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyBufferProcs Buffer_as_buffer = {
    (getbufferproc)Buffer_getbuffer,
    (releasebufferproc)Buffer_releasebuffer,
};

static PySequenceMethods Buffer_as_sequence = {
    .sq_length = (lenfunc)Buffer_length,
};

PyDoc_STRVAR(Buffer_doc,
"A reference-counted goshm buffer: one reference to it, held by this process.\n\n"
"Made by Heap.buf_alloc, Heap.buffer_at, Buffer.retain and Channel.recv, never\n"
"directly. It exposes its payload through the buffer protocol, writable and\n"
"without a copy: memoryview(buf), numpy.frombuffer(buf, dtype), bytes(buf),\n"
"buf_into.readinto(buf). Each export keeps the Buffer alive, and while one\n"
"exists the reference cannot be released or sent (BufferError).\n\n"
"The reference goes with release()/close() (idempotent), at the end of a\n"
"with-block, when the object is garbage-collected, when its Heap is closed,\n"
"or into a channel with Channel.send (the object is then closed).");

static PyTypeObject BufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "goshm.Buffer",
    .tp_basicsize = sizeof(BufferObject),
    .tp_dealloc = (destructor)Buffer_dealloc,
    .tp_repr = (reprfunc)Buffer_repr,
    .tp_as_sequence = &Buffer_as_sequence,
    .tp_as_buffer = &Buffer_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Buffer_doc,
    .tp_weaklistoffset = offsetof(BufferObject, weakreflist),
    .tp_methods = Buffer_methods,
    .tp_getset = Buffer_getset,
};

/* ---- Channel -------------------------------------------------------------- */

static int chan_check_open(ChannelObject *ch)
{
    if (!ch->c || !ch->heap->h) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed goshm channel");
        return -1;
    }
    return 0;
}

/* Close c (not busy). goshm_chan_close returns 0 always. */
static void chan_drop(ChannelObject *ch)
{
    goshm_chan_t *c = ch->c;
    ch->c = NULL;
    if (ch->pprev) {
        *ch->pprev = ch->next;
        if (ch->next) ch->next->pprev = ch->pprev;
        ch->next = NULL;
        ch->pprev = NULL;
    }
    if (c && ch->heap->h) goshm_chan_close(c);
}

static void Channel_dealloc(ChannelObject *ch)
{
    if (ch->weakreflist) PyObject_ClearWeakRefs((PyObject *)ch);
    chan_drop(ch);
    Py_XDECREF(ch->name);
    Py_XDECREF(ch->heap);
    PyObject_Free(ch);
}

static PyObject *Channel_close(ChannelObject *ch, PyObject *unused)
{
    if (!ch->c) Py_RETURN_NONE;
    if (ch->busy) {
        PyErr_SetString(PyExc_RuntimeError, "cannot close a goshm channel while another thread sends or receives on it");
        return NULL;
    }
    chan_drop(ch);
    Py_RETURN_NONE;
}

/* One blocking channel call with the GIL released, in slices of SLICE_MS
 * with a signal check between them. recv: off_io receives the offset; send:
 * *off_io is sent. 0, or -1 with an exception set. */
static int chan_call(ChannelObject *ch, int is_send, goshm_off_t *off_io, int64_t timeout_ms)
{
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    goshm_chan_t *c = ch->c;
    for (;;) {
        int slice;
        if (timeout_ms == 0) slice = 0;
        else if (timeout_ms < 0) slice = SLICE_MS;
        else {
            int64_t left = deadline - now_ms();
            if (left < 1) left = 1;
            slice = left > SLICE_MS ? SLICE_MS : (int)left;
        }
        int rc, err;
        ch->busy++;
        ch->heap->busy++;
        Py_BEGIN_ALLOW_THREADS
        rc = is_send ? goshm_chan_send(c, *off_io, slice) : goshm_chan_recv(c, off_io, slice);
        err = errno;
        Py_END_ALLOW_THREADS
        ch->busy--;
        ch->heap->busy--;
        if (rc == 0) return 0;
        int more = (err == ETIMEDOUT || err == EINTR) &&
                   (timeout_ms < 0 || (timeout_ms > 0 && now_ms() < deadline));
        if (!more) {
            if (err == EINTR) err = timeout_ms == 0 ? EAGAIN : ETIMEDOUT;
            PyObject *name = ch->name;
            raise_errno(err, PyUnicode_AsUTF8(name));
            return -1;
        }
        if (PyErr_CheckSignals() < 0) return -1;
    }
}

static PyObject *Channel_send(ChannelObject *ch, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"message", "timeout", NULL};
    PyObject *msg, *tmo = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:send", kwlist, &msg, &tmo)) return NULL;
    int64_t ms;
    if (timeout_arg(tmo, &ms) < 0) return NULL;
    if (chan_check_open(ch) < 0) return NULL;
    HeapObject *heap = ch->heap;
    BufferObject *b = NULL;
    goshm_off_t off;
    if (PyObject_TypeCheck(msg, &BufferType)) {
        b = (BufferObject *)msg;
        if (b->heap != heap) {
            PyErr_SetString(PyExc_ValueError, "the buffer belongs to another Heap object than the channel");
            return NULL;
        }
        if (buf_check_live(b) < 0 || buf_check_movable(b, "send") < 0) return NULL;
        off = b->off;
    } else {
        if (offset_arg(msg, &off) < 0) return NULL;
        /* libgoshm moves a reference this process holds to the offset sent:
         * if a Buffer object owns one, that is the reference that goes. */
        BufferObject *exported = NULL;
        for (BufferObject *x = heap->bufs; x; x = x->next) {
            if (x->off != off || x->state != BUF_LIVE) continue;
            if (x->exports == 0) {
                b = x;
                break;
            }
            exported = x;
        }
        if (!b && exported) {
            buf_check_movable(exported, "send"); /* raises BufferError */
            return NULL;
        }
    }
    if (b) {
        Py_INCREF(b);
        b->state = BUF_SENDING;
    }
    int rc = chan_call(ch, 1, &off, ms);
    if (b) {
        if (rc == 0) {
            /* The reference travels with the message: the object is done. */
            b->p = NULL;
            b->state = BUF_RELEASED;
            buf_unlink(b);
        } else {
            b->state = BUF_LIVE;
        }
        Py_DECREF(b);
    }
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Channel_recv(ChannelObject *ch, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *tmo = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:recv", kwlist, &tmo)) return NULL;
    int64_t ms;
    if (timeout_arg(tmo, &ms) < 0) return NULL;
    if (chan_check_open(ch) < 0) return NULL;
    goshm_off_t off = GOSHM_NULL;
    if (chan_call(ch, 0, &off, ms) < 0) return NULL;
    HeapObject *heap = ch->heap;
    if (!heap->h) {
        /* Closed while we waited? close() refuses while busy, so no. */
        PyErr_SetString(PyExc_ValueError, "operation on a closed goshm heap");
        return NULL;
    }
    /* A live buffer: the message brought its reference (see the README on
     * plain offsets of buffers). Anything else is a plain value. */
    unsigned char *p = goshm_ptr(heap->h, off);
    if (p && goshm_buf_refs(heap->h, p) > 0) return buf_new(heap, p, buf_len(heap->h, p));
    return PyLong_FromUnsignedLongLong(off);
}

static PyObject *Channel_fileno(ChannelObject *ch, PyObject *unused)
{
    if (chan_check_open(ch) < 0) return NULL;
    int fd = goshm_chan_fd(ch->c);
    if (fd < 0) return raise_errno(errno, PyUnicode_AsUTF8(ch->name));
    return PyLong_FromLong(fd);
}

static PyObject *Channel_enter(ChannelObject *ch, PyObject *unused)
{
    if (chan_check_open(ch) < 0) return NULL;
    Py_INCREF(ch);
    return (PyObject *)ch;
}

static PyObject *Channel_exit(ChannelObject *ch, PyObject *args)
{
    return Channel_close(ch, NULL);
}

static PyObject *Channel_get_closed(ChannelObject *ch, void *unused)
{
    return PyBool_FromLong(!ch->c || !ch->heap->h);
}

static PyObject *Channel_repr(ChannelObject *ch)
{
    return PyUnicode_FromFormat("<goshm.Channel %R %s>", ch->name, ch->c && ch->heap->h ? "open" : "closed");
}

static PyMethodDef Channel_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Channel_send, METH_VARARGS | METH_KEYWORDS,
     "send($self, /, message, timeout=None)\n--\n\n"
     "Send a Buffer or an offset (int). A Buffer's reference moves into the channel: the object is "
     "closed once the send succeeds (BufferError while it is exported). An int naming a buffer this "
     "heap handle holds moves one of its Buffer objects' reference the same way; any other int "
     "travels as a plain value. timeout in seconds: None waits for room for ever, 0 never waits "
     "(BlockingIOError when full), t > 0 raises TimeoutError after t seconds."},
    {"recv", (PyCFunction)(void (*)(void))Channel_recv, METH_VARARGS | METH_KEYWORDS,
     "recv($self, /, timeout=None)\n--\n\n"
     "Receive the next message: a Buffer owning the reference that travelled with it, or an int for "
     "a plain offset. timeout as for send (BlockingIOError when empty and timeout is 0, "
     "TimeoutError when it runs out). Ctrl-C and other signals interrupt the wait."},
    {"fileno", (PyCFunction)Channel_fileno, METH_NOARGS,
     "fileno($self, /)\n--\n\nA descriptor that polls readable while recv would not block "
     "(goshm_chan_fd): for select, selectors and asyncio's loop.add_reader. Owned by the channel."},
    {"close", (PyCFunction)Channel_close, METH_NOARGS,
     "close($self, /)\n--\n\nClose this handle on the channel (goshm_chan_close). Idempotent. The channel "
     "itself lives on while its name or another process's handle has it."},
    {"__enter__", (PyCFunction)Channel_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Channel_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Channel_members[] = {
    {"name", T_OBJECT, offsetof(ChannelObject, name), READONLY, "The channel's name."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Channel_getset[] = {
    {"closed", (getter)Channel_get_closed, NULL, "True once closed (or its heap closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Channel_doc,
"A handle on a named goshm channel: a bounded queue of offsets and buffers\n"
"between any number of senders and receivers in any processes.\n\n"
"Made by Heap.channel(name, capacity). send, recv, fileno, close; a context\n"
"manager (closed at the end of the with-block) and closed when\n"
"garbage-collected.");

static PyTypeObject ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "goshm.Channel",
    .tp_basicsize = sizeof(ChannelObject),
    .tp_dealloc = (destructor)Channel_dealloc,
    .tp_repr = (reprfunc)Channel_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Channel_doc,
    .tp_weaklistoffset = offsetof(ChannelObject, weakreflist),
    .tp_methods = Channel_methods,
    .tp_members = Channel_members,
    .tp_getset = Channel_getset,
};

/* ---- Heap ----------------------------------------------------------------- */

/* Release what the heap's Buffers and Channels hold, then detach. 0, or -1
 * with an exception: RuntimeError (a call without the GIL is running),
 * BufferError (an export or a send in progress: nothing is done) or OSError
 * from goshm_detach (when raise_err; the handle is gone all the same). */
static int heap_close(HeapObject *self, int raise_err)
{
    if (!self->h) return 0;
    if (self->busy) {
        if (raise_err)
            PyErr_SetString(PyExc_RuntimeError, "cannot close a goshm heap while another thread uses it");
        return -1;
    }
    for (BufferObject *b = self->bufs; b; b = b->next)
        if (buf_check_movable(b, "release") < 0) {
            if (!raise_err) PyErr_Clear();
            return -1;
        }
    while (self->chans) chan_drop(self->chans);
    while (self->bufs) buf_drop(self->bufs, 0);
    goshm_t *h = self->h;
    self->h = NULL;
    int rc, err;
    Py_BEGIN_ALLOW_THREADS
    rc = goshm_detach(h);
    err = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0 && raise_err) {
        raise_errno(err, "goshm_detach");
        return -1;
    }
    return 0;
}

static void Heap_dealloc(HeapObject *self)
{
    if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
    /* Buffers and Channels hold the heap: none is left, nothing is busy. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    heap_close(self, 0);
    PyErr_Restore(type, value, tb);
    PyObject_Free(self);
}

static PyObject *Heap_close(HeapObject *self, PyObject *unused)
{
    if (heap_close(self, 1) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Heap_enter(HeapObject *self, PyObject *unused)
{
    if (heap_check_open(self) < 0) return NULL;
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *Heap_exit(HeapObject *self, PyObject *args)
{
    return Heap_close(self, NULL);
}

static PyObject *Heap_buf_alloc(HeapObject *self, PyObject *arg)
{
    Py_ssize_t size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred()) return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "buffer size must be >= 0");
        return NULL;
    }
    if (heap_check_open(self) < 0) return NULL;
    void *p;
    int err;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    p = goshm_buf_alloc(self->h, (size_t)size);
    err = errno;
    Py_END_ALLOW_THREADS
    self->busy--;
    if (!p) return raise_errno(err, "goshm_buf_alloc");
    return buf_new(self, p, size);
}

static PyObject *Heap_buffer_at(HeapObject *self, PyObject *arg)
{
    goshm_off_t off;
    if (offset_arg(arg, &off) < 0) return NULL;
    if (heap_check_open(self) < 0) return NULL;
    unsigned char *p = goshm_ptr(self->h, off);
    if (!p) return raise_errno(EINVAL, "offset outside the heap");
    if (goshm_buf_retain(self->h, p) != 0) return raise_errno(errno, "goshm_buf_retain");
    return buf_new(self, p, buf_len(self->h, p));
}

static PyObject *Heap_name_set(HeapObject *self, PyObject *args)
{
    const char *name;
    PyObject *o;
    goshm_off_t off;
    if (!PyArg_ParseTuple(args, "sO:name_set", &name, &o)) return NULL;
    if (offset_arg(o, &off) < 0) return NULL;
    if (heap_check_open(self) < 0) return NULL;
    int rc, err;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = goshm_name_set(self->h, name, off);
    err = errno;
    Py_END_ALLOW_THREADS
    self->busy--;
    if (rc != 0) return raise_errno(err, name);
    Py_RETURN_NONE;
}

static PyObject *Heap_name_get(HeapObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:name_get", &name)) return NULL;
    if (heap_check_open(self) < 0) return NULL;
    goshm_off_t off = goshm_name_get(self->h, name);
    if (off == GOSHM_NULL) {
        if (errno == ENOENT) {
            PyErr_SetObject(PyExc_KeyError, PyTuple_GET_ITEM(args, 0));
            return NULL;
        }
        return raise_errno(errno, name);
    }
    return PyLong_FromUnsignedLongLong(off);
}

static PyObject *Heap_name_del(HeapObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:name_del", &name)) return NULL;
    if (heap_check_open(self) < 0) return NULL;
    int rc, err;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = goshm_name_del(self->h, name);
    err = errno;
    Py_END_ALLOW_THREADS
    self->busy--;
    if (rc != 0) {
        if (err == ENOENT) {
            PyErr_SetObject(PyExc_KeyError, PyTuple_GET_ITEM(args, 0));
            return NULL;
        }
        return raise_errno(err, name);
    }
    Py_RETURN_NONE;
}

static PyObject *Heap_channel(HeapObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "capacity", NULL};
    PyObject *nameobj;
    unsigned long cap = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "U|k:channel", kwlist, &nameobj, &cap)) return NULL;
    const char *name = PyUnicode_AsUTF8(nameobj);
    if (!name) return NULL;
    if (cap > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "capacity too large");
        return NULL;
    }
    if (heap_check_open(self) < 0) return NULL;
    ChannelObject *ch = PyObject_New(ChannelObject, &ChannelType);
    if (!ch) return NULL;
    Py_INCREF(self);
    ch->heap = self;
    ch->c = NULL;
    Py_INCREF(nameobj);
    ch->name = nameobj;
    ch->busy = 0;
    ch->next = NULL;
    ch->pprev = NULL;
    ch->weakreflist = NULL;
    goshm_chan_t *c;
    int err;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    c = goshm_chan_open(self->h, name, (uint32_t)cap);
    err = errno;
    Py_END_ALLOW_THREADS
    self->busy--;
    if (!c) {
        Py_DECREF(ch);
        return raise_errno(err, name);
    }
    ch->c = c;
    ch->next = self->chans;
    if (ch->next) ch->next->pprev = &ch->next;
    ch->pprev = &self->chans;
    self->chans = ch;
    return (PyObject *)ch;
}

static PyObject *Heap_channel_unlink(HeapObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:channel_unlink", &name)) return NULL;
    if (heap_check_open(self) < 0) return NULL;
    int rc, err;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = goshm_chan_unlink(self->h, name);
    err = errno;
    Py_END_ALLOW_THREADS
    self->busy--;
    if (rc != 0) return raise_errno(err, name);
    Py_RETURN_NONE;
}

static PyObject *Heap_get_heap_id(HeapObject *self, void *unused)
{
    if (heap_check_open(self) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(goshm_heap_id(self->h));
}

static PyObject *Heap_get_closed(HeapObject *self, void *unused)
{
    return PyBool_FromLong(self->h == NULL);
}

static PyObject *Heap_repr(HeapObject *self)
{
    if (!self->h) return PyUnicode_FromString("<goshm.Heap closed>");
    char text[64];
    snprintf(text, sizeof text, "<goshm.Heap id=0x%016llx>", (unsigned long long)goshm_heap_id(self->h));
    return PyUnicode_FromString(text);
}

static PyMethodDef Heap_methods[] = {
    {"close", (PyCFunction)Heap_close, METH_NOARGS,
     "close($self, /)\n--\n\nRelease every reference this heap's Buffer objects hold and close its "
     "Channels (those objects become closed), then detach (goshm_detach). Idempotent. BufferError "
     "(and nothing done) while a Buffer is exported; RuntimeError while another thread is in a call "
     "on this heap."},
    {"__enter__", (PyCFunction)Heap_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Heap_exit, METH_VARARGS, NULL},
    {"buf_alloc", (PyCFunction)Heap_buf_alloc, METH_O,
     "buf_alloc($self, size, /)\n--\n\nA new buffer of size bytes (goshm_buf_alloc), not initialised, holding "
     "one reference: a Buffer. OSError (ENOMEM, EDQUOT, ENOSPC, ...) on failure."},
    {"buffer_at", (PyCFunction)Heap_buffer_at, METH_O,
     "buffer_at($self, offset, /)\n--\n\nThe live buffer at offset (an int received from another process, or "
     "a name): takes one more reference on it (goshm_buf_retain) and returns it as a Buffer. "
     "OSError EINVAL if offset is not a live buffer."},
    {"name_set", (PyCFunction)Heap_name_set, METH_VARARGS,
     "name_set($self, name, offset, /)\n--\n\nName an offset (an int, or a Buffer's offset) in the heap's "
     "directory. A name holds no reference. FileExistsError if the name is taken; OSError EINVAL for "
     "a bad name (1..63 printable ASCII bytes, no '/'), ENOSPC when the directory is full."},
    {"name_get", (PyCFunction)Heap_name_get, METH_VARARGS,
     "name_get($self, name, /)\n--\n\nThe offset named name (an int). KeyError if there is no such name."},
    {"name_del", (PyCFunction)Heap_name_del, METH_VARARGS,
     "name_del($self, name, /)\n--\n\nRemove a name. KeyError if there is no such name."},
    {"channel", (PyCFunction)(void (*)(void))Heap_channel, METH_VARARGS | METH_KEYWORDS,
     "channel($self, /, name, capacity=0)\n--\n\nOpen the channel name (goshm_chan_open), creating it with room "
     "for capacity messages (rounded up to a power of two, at most 1 << 20) if it does not exist; "
     "capacity 0: it must exist (FileNotFoundError otherwise). Returns a Channel."},
    {"channel_unlink", (PyCFunction)Heap_channel_unlink, METH_VARARGS,
     "channel_unlink($self, name, /)\n--\n\nRemove the channel's name (goshm_chan_unlink). The channel goes "
     "when the last handle on it closes; the references of messages still in it are released. "
     "FileNotFoundError if there is no such channel."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Heap_getset[] = {
    {"heap_id", (getter)Heap_get_heap_id, NULL,
     "The heap's identity (goshm_heap_id): offsets mean the same only between handles with the "
     "same id.", NULL},
    {"closed", (getter)Heap_get_closed, NULL, "True once closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Heap_doc,
"A process's attachment to a goshm heap (goshm_attach). Made by goshm.attach().\n\n"
"A context manager: detached at the end of the with-block. close() (or the\n"
"end of the block, or garbage collection) releases every Buffer and Channel\n"
"made from it first.");

static PyTypeObject HeapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "goshm.Heap",
    .tp_basicsize = sizeof(HeapObject),
    .tp_dealloc = (destructor)Heap_dealloc,
    .tp_repr = (reprfunc)Heap_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Heap_doc,
    .tp_weaklistoffset = offsetof(HeapObject, weakreflist),
    .tp_methods = Heap_methods,
    .tp_getset = Heap_getset,
};

/* ---- module --------------------------------------------------------------- */

static PyObject *mod_attach(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"socket", NULL};
    PyObject *sockobj = Py_None, *bytes = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:attach", kwlist, &sockobj)) return NULL;
    if (sockobj != Py_None && !PyUnicode_FSConverter(sockobj, &bytes)) return NULL;
    const char *path = bytes ? PyBytes_AS_STRING(bytes) : NULL;
    HeapObject *self = PyObject_New(HeapObject, &HeapType);
    if (!self) {
        Py_XDECREF(bytes);
        return NULL;
    }
    self->h = NULL;
    self->busy = 0;
    self->bufs = NULL;
    self->chans = NULL;
    self->weakreflist = NULL;
    goshm_t *h;
    int err;
    Py_BEGIN_ALLOW_THREADS
    h = goshm_attach(path);
    err = errno;
    Py_END_ALLOW_THREADS
    if (!h) {
        raise_errno(err, path ? path : "goshm_attach");
        Py_XDECREF(bytes);
        Py_DECREF(self);
        return NULL;
    }
    Py_XDECREF(bytes);
    self->h = h;
    return (PyObject *)self;
}

static PyObject *mod_version(PyObject *mod, PyObject *unused)
{
    return PyLong_FromLong(goshm_version());
}

static PyMethodDef module_methods[] = {
    {"attach", (PyCFunction)(void (*)(void))mod_attach, METH_VARARGS | METH_KEYWORDS,
     "attach(socket=None)\n--\n\nAttach to the goshmd serving socket (a path; None: $GOSHM_SOCKET, "
     "else the default path) and return a Heap. OSError on failure: FileNotFoundError (no daemon "
     "there), ConnectionRefusedError, PermissionError, ..."},
    {"version", mod_version, METH_NOARGS,
     "version()\n--\n\nThe version of the libgoshm actually loaded (major * 10000 + minor * 100 + "
     "patch)."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(module_doc,
"goshm: zero-copy IPC over a goshm shared-memory heap.\n\n"
"    import goshm\n"
"    with goshm.attach() as heap, heap.channel('frames', 64) as ch:\n"
"        buf = heap.buf_alloc(4096)\n"
"        memoryview(buf)[:5] = b'hello'\n"
"        ch.send(buf)          # the reference travels; buf is now closed\n\n"
"See python/README.md in the goshm sources and goshm(3).");

static struct PyModuleDef goshm_module = {
    PyModuleDef_HEAD_INIT, "goshm", module_doc, -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_goshm(void)
{
    if (PyType_Ready(&HeapType) < 0 || PyType_Ready(&BufferType) < 0 || PyType_Ready(&ChannelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&goshm_module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Heap", (PyObject *)&HeapType) < 0 ||
        PyModule_AddObjectRef(m, "Buffer", (PyObject *)&BufferType) < 0 ||
        PyModule_AddObjectRef(m, "Channel", (PyObject *)&ChannelType) < 0 ||
        PyModule_AddIntConstant(m, "VERSION", GOSHM_VERSION) < 0 ||
        PyModule_AddStringConstant(m, "__version__",
                                   Py_STRINGIFY(GOSHM_VERSION_MAJOR) "." Py_STRINGIFY(GOSHM_VERSION_MINOR) "." Py_STRINGIFY(
                                       GOSHM_VERSION_PATCH)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
