/* gradlab: one include for programs, models and labs. */
#ifndef GRADLAB_H
#define GRADLAB_H

#include "ops.h"
#include "optim.h"
#include "rng.h"
#include "tensor.h"

#endif
