/* For the core's op implementations only (not part of the API models see): the device's backend table and the one
 * way to call a slot of it. GL_CALL(device, "op", slot, args...) calls the slot of that device's table, or stops
 * with the one message every op gives when its device has no kernel for it. */
#ifndef GRADLAB_OP_IMPL_H
#define GRADLAB_OP_IMPL_H

#include <stddef.h>

#include "backend.h"
#include "ops.h"

/* the table of device d (fatal, naming op, if the build has no such device) */
const gl_backend *gl_backend_of(gl_device d, const char *op);
/* the same, after checking that the slot at slot_offset is filled (else the message, naming op and slot) */
const gl_backend *gl_backend_need(gl_device d, const char *op, size_t slot_offset, const char *slot);
/* a slot that declined this configuration of op (a bool slot returning false) */
_Noreturn void gl_op_unsupported(const char *op, gl_device d, const char *what);

#define GL_BACKEND(dev, op, slot) gl_backend_need((dev), (op), offsetof(gl_backend, slot), #slot)
#define GL_CALL(dev, op, slot, ...) (GL_BACKEND(dev, op, slot)->slot(__VA_ARGS__))

#endif
