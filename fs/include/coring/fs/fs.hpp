// Everything of the fs layer: files, registered buffers and files, path operations,
// copying.
#pragma once

#include "coring/fs/buffers.hpp"
#include "coring/fs/copy.hpp"
#include "coring/fs/error.hpp"
#include "coring/fs/file.hpp"
#include "coring/fs/file_table.hpp"
#include "coring/fs/paths.hpp"
#include "coring/fs/probe.hpp"
#include "coring/fs/stat.hpp"
