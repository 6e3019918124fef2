#ifndef PARLEY_CLIBUV_SHIM_H
#define PARLEY_CLIBUV_SHIM_H
#include <uv.h>
#endif
