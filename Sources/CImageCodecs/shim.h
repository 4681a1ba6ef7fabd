#ifndef KOSMOS_CIMAGECODECS_SHIM_H
#define KOSMOS_CIMAGECODECS_SHIM_H
// jpeglib.h expects FILE and size_t to be declared before it is included.
#include <stddef.h>
#include <stdio.h>
#include <jpeglib.h>
#include <png.h>
#endif
