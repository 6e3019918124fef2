#ifndef PARLEY_CNETTLE_SHIM_H
#define PARLEY_CNETTLE_SHIM_H
/* Only the Keccak-f[1600] permutation: Parley builds keccak-256 (Ethereum's padding,
   not SHA3's) on top of it, see ParleyCrypto/Keccak256.swift. */
#include <nettle/sha3.h>
#endif
