/* A compiled twin of the common case of codec.Decoder.feed (DESIGN §3).
 *
 * scan(buf, i, v5, limit, out) decodes the complete packets at buf[i:] that it
 * knows: PUBLISH whose topic is in codec's validated-topic cache and that has
 * no MQTT 5 properties, and the short success acks (PUBACK, PUBREC, PUBREL,
 * PUBCOMP with a packet id only). It appends them to `out`, built exactly as
 * the Python loop builds them, and returns the index of the first packet it
 * left alone: an incomplete one, one of another kind, or one with anything
 * wrong, which the Python loop then decodes (and refuses) as it always did.
 * So this file never raises a protocol error and never decides one: it only
 * skips the interpreter for what the Python code would accept anyway.
 *
 * setup(topics, publish, acks, publish_slots, ack_slots) hands over codec's
 * cache dict, the Publish class, the {byte 0: ack class} table and the slot
 * descriptors of their fields in __init__ order, once, at import. Packets are
 * built as their dataclass __init__ builds them, every field stored, without
 * running it (codec.py checks that the fields are the ones this file fills).
 *
 * Without a C compiler the extension is not built and codec.py runs the pure
 * Python loop alone; test/unit/test_codec*.py run against both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define PUBLISH_FIELDS 8  /* topic, payload, qos, retain, dup, packet_id, properties, frame */
#define ACK_FIELDS 3      /* packet_id, reason_code, properties */

static PyObject *topics;   /* codec._TOPICS: raw topic bytes -> validated str */
static PyTypeObject *publish;  /* packets.Publish */
static PyTypeObject *acks[8];  /* ack class by byte 0 >> 4, for 0x40, 0x50, 0x62, 0x70 */
static Py_ssize_t publish_off[PUBLISH_FIELDS], ack_off[8][ACK_FIELDS];

/* The slot offsets of `descrs` (member descriptors of `type`) into `off`. */
static int
offsets(PyTypeObject *type, PyObject *descrs, int n, Py_ssize_t *off)
{
    if (!PyTuple_Check(descrs) || PyTuple_GET_SIZE(descrs) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d slot descriptors", type->tp_name, n);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        PyObject *d = PyTuple_GET_ITEM(descrs, k);
        if (!Py_IS_TYPE(d, &PyMemberDescr_Type) || PyDescr_TYPE(d) != type
                || ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_ValueError, "%s: field %d is not a slot of the class", type->tp_name, k);
            return -1;
        }
        off[k] = ((PyMemberDescrObject *)d)->d_member->offset;
    }
    return 0;
}

/* A new instance of `type` with its slots at `off` set to `values` (new references taken). */
static PyObject *
build(PyTypeObject *type, const Py_ssize_t *off, PyObject **values, int n)
{
    PyObject *obj = type->tp_alloc(type, 0);
    if (obj == NULL) {
        for (int k = 0; k < n; k++)
            Py_DECREF(values[k]);
        return NULL;
    }
    for (int k = 0; k < n; k++)
        *(PyObject **)((char *)obj + off[k]) = values[k];
    return obj;
}

static PyObject *
setup(PyObject *self, PyObject *args)
{
    PyObject *t, *p, *table, *pslots, *aslots;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!", &PyDict_Type, &t, &PyType_Type, &p, &PyDict_Type, &table,
                          &PyTuple_Type, &pslots, &PyDict_Type, &aslots))
        return NULL;
    if (offsets((PyTypeObject *)p, pslots, PUBLISH_FIELDS, publish_off) < 0)
        return NULL;
    static const unsigned char bytes[] = {0x40, 0x50, 0x62, 0x70};
    PyObject *found[4];
    for (int k = 0; k < 4; k++) {
        PyObject *key = PyLong_FromLong(bytes[k]);
        if (key == NULL)
            return NULL;
        found[k] = PyDict_GetItemWithError(table, key);
        PyObject *slots = found[k] ? PyDict_GetItemWithError(aslots, key) : NULL;
        Py_DECREF(key);
        if (slots == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "no ack class or slots for byte 0x%02x", bytes[k]);
            return NULL;
        }
        if (!PyType_Check(found[k])
                || offsets((PyTypeObject *)found[k], slots, ACK_FIELDS, ack_off[bytes[k] >> 4]) < 0)
            return NULL;
    }
    Py_XSETREF(topics, Py_NewRef(t));
    Py_XSETREF(publish, (PyTypeObject *)Py_NewRef(p));
    for (int k = 0; k < 4; k++)
        Py_XSETREF(acks[bytes[k] >> 4], (PyTypeObject *)Py_NewRef(found[k]));
    Py_RETURN_NONE;
}

/* The packet at buf[i:n] as a new object, NULL with *stop set when it is left
 * to Python (NULL without *stop: an error is set). *end receives its end. */
static PyObject *
one(PyObject *bufobj, const unsigned char *buf, Py_ssize_t i, Py_ssize_t n, int v5, Py_ssize_t limit,
    Py_ssize_t *end_out, int *stop)
{
    unsigned int b0 = buf[i];
    Py_ssize_t p = i + 1, rl = 0;
    for (int k = 0;; k++) {          /* remaining length: a variable byte integer */
        if (k == 4 || p >= n) {      /* malformed or incomplete: Python says which */
            *stop = 1;
            return NULL;
        }
        unsigned int b = buf[p++];
        rl |= (Py_ssize_t)(b & 0x7F) << (7 * k);
        if (!(b & 0x80))
            break;
    }
    Py_ssize_t end = p + rl;
    if ((limit && end - i > limit) || end > n) {
        *stop = 1;
        return NULL;
    }
    *end_out = end;

    if ((b0 & 0xF0) == 0x30) {       /* PUBLISH */
        unsigned int qos = (b0 >> 1) & 3;
        if (qos == 3 || (b0 & 0x0E) == 0x08 || rl < 2) {
            *stop = 1;
            return NULL;
        }
        Py_ssize_t q = p + 2 + ((buf[p] << 8) | buf[p + 1]);
        if (q > end || q == p + 2) { /* truncated, or an empty topic (an alias): Python */
            *stop = 1;
            return NULL;
        }
        PyObject *raw = PyBytes_FromStringAndSize((const char *)buf + p + 2, q - p - 2);
        if (raw == NULL)
            return NULL;
        PyObject *topic = PyDict_GetItemWithError(topics, raw);  /* borrowed */
        Py_DECREF(raw);
        if (topic == NULL) {
            if (!PyErr_Occurred())
                *stop = 1;           /* not seen yet: Python validates and caches it */
            return NULL;
        }
        Py_INCREF(topic);
        PyObject *pid;
        if (qos) {
            if (q + 2 > end) {
                Py_DECREF(topic);
                *stop = 1;
                return NULL;
            }
            long id = (buf[q] << 8) | buf[q + 1];
            if (!id) {
                Py_DECREF(topic);
                *stop = 1;
                return NULL;
            }
            pid = PyLong_FromLong(id);
            if (pid == NULL) {
                Py_DECREF(topic);
                return NULL;
            }
            q += 2;
        }
        else {
            pid = Py_NewRef(Py_None);
        }
        if (v5) {
            if (q >= end || buf[q]) {  /* no property length, or properties: Python */
                Py_DECREF(topic);
                Py_DECREF(pid);
                *stop = 1;
                return NULL;
            }
            q += 1;
        }
        PyObject *payload = PyBytes_FromStringAndSize((const char *)buf + q, end - q);
        PyObject *frame;
        if (b0 == 0x30 && !v5)
            frame = (i == 0 && end == n) ? Py_NewRef(bufobj)
                                         : PyBytes_FromStringAndSize((const char *)buf + i, end - i);
        else
            frame = Py_NewRef(Py_None);
        PyObject *q_obj = PyLong_FromLong(qos);  /* a cached small int */
        if (payload == NULL || frame == NULL || q_obj == NULL) {
            Py_DECREF(topic);
            Py_DECREF(pid);
            Py_XDECREF(payload);
            Py_XDECREF(frame);
            Py_XDECREF(q_obj);
            return NULL;
        }
        PyObject *values[PUBLISH_FIELDS] = {topic, payload, q_obj, PyBool_FromLong(b0 & 1),
                                            PyBool_FromLong(b0 & 8), pid, Py_NewRef(Py_None), frame};
        return build(publish, publish_off, values, PUBLISH_FIELDS);
    }
    if (rl == 2 && (b0 == 0x40 || b0 == 0x50 || b0 == 0x62 || b0 == 0x70)) {  /* short ack */
        long id = (buf[p] << 8) | buf[p + 1];
        if (!id) {
            *stop = 1;
            return NULL;
        }
        PyObject *pid = PyLong_FromLong(id);
        if (pid == NULL)
            return NULL;
        PyObject *values[ACK_FIELDS] = {pid, PyLong_FromLong(0), Py_NewRef(Py_None)};
        return build(acks[b0 >> 4], ack_off[b0 >> 4], values, ACK_FIELDS);
    }
    *stop = 1;
    return NULL;
}

static PyObject *
scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyBytes_CheckExact(args[0]) || !PyList_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError, "scan(buf: bytes, i: int, v5: bool, limit: int, out: list)");
        return NULL;
    }
    if (publish == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.setup() was not called");
        return NULL;
    }
    PyObject *bufobj = args[0], *out = args[4];
    Py_ssize_t i = PyLong_AsSsize_t(args[1]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    int v5 = PyObject_IsTrue(args[2]);
    if (v5 < 0)
        return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[3]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(bufobj);
    Py_ssize_t n = PyBytes_GET_SIZE(bufobj);
    if (i < 0)
        i = 0;
    while (n - i >= 2) {
        Py_ssize_t end = i;
        int stop = 0;
        PyObject *packet = one(bufobj, buf, i, n, v5, limit, &end, &stop);
        if (packet == NULL) {
            if (stop)
                break;
            return NULL;
        }
        int err = PyList_Append(out, packet);
        Py_DECREF(packet);
        if (err < 0)
            return NULL;
        i = end;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS,
     "setup(topics, Publish, acks, publish_slots, ack_slots): codec's topic cache and packet classes"},
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(buf, i, v5, limit, out) -> index of the first packet left to the Python decoder"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vmqpy.mqtt._speedups",
    "Compiled twin of the common case of codec.Decoder.feed.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
