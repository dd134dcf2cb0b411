# Runs `coring-bench all` in a tiny mode and checks that it ran end to end: exit status
# 0, the table with a row for every benchmark and peer, and JSON results that parse and
# hold every benchmark, every side (with one value per run and a median for each metric,
# or why it was skipped and what adds it), the machine and, when gnuplot drew one, a PNG
# chart. Figures are not checked: they depend on the machine and its load. On io_uring
# (the JSON's options.backend), the suite has the two rows on the epoll backend as well,
# echo-epoll-backend and http-epoll-backend; every benchmark names the backend its coring
# side ran on, and the table's header says it.
#
#   cmake -DBENCH=coring-bench -DARGS="all;--reps;1;..." -DMODE=present|absent
#         -DWORK_DIR=dir -P check_all.cmake
#
# MODE=absent runs it with CORING_BENCH_PATH set to an empty directory, so that nginx,
# h2o, wrk, fio and gnuplot are not found: their cells must say skipped, with the apt-get
# line that adds them, and the run must still succeed.

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/empty")
set(json "${WORK_DIR}/results.json")
set(launcher)
if(MODE STREQUAL "absent")
  set(launcher ${CMAKE_COMMAND} -E env "CORING_BENCH_PATH=${WORK_DIR}/empty")
endif()

execute_process(COMMAND ${launcher} "${BENCH}" ${ARGS} --json "${json}"
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT status EQUAL 0)
  message(FATAL_ERROR "coring-bench all exited with ${status}:\n${err}")
endif()

# Fails the test with `what` unless `condition` (the text of an if() condition, e.g.
# "count EQUAL want") holds.
macro(require condition what)
  cmake_language(EVAL CODE "
    if(${condition})
      set(require_ok TRUE)
    else()
      set(require_ok FALSE)
    endif()")
  if(NOT require_ok)
    message(FATAL_ERROR "${what}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
endmacro()

# The backend coring's side ran on, from the JSON (checked in full below).
require("EXISTS ${json}" "--json wrote no file")
file(READ "${json}" results)
string(JSON backend ERROR_VARIABLE json_error GET "${results}" options backend)
require("NOT json_error" "the JSON has no options.backend: ${json_error}")
require("backend STREQUAL io_uring OR backend STREQUAL epoll"
        "options.backend is '${backend}', want io_uring or epoll")
set(epoll_rows FALSE)
if(backend STREQUAL "io_uring")
  set(epoll_rows TRUE)
endif()

# --- the table ------------------------------------------------------------------------------
string(FIND "${out}" "coring CPU/op" at)
require("at GREATER -1" "the table's header is missing")
string(FIND "${out}" "coring's backend: ${backend} (" at)
require("at GREATER -1" "the table's header does not say coring's backend, ${backend}")
string(FIND "${out}" "FAILED" at)
require("at EQUAL -1" "a benchmark failed")
set(expected_sides
    "ring-nop:coring,liburing"
    "runtime-nop:coring,coring-ring,liburing"
    "echo:coring,epoll,liburing,asio-epoll,asio-uring")
if(epoll_rows)
  list(APPEND expected_sides "echo-epoll-backend:coring,epoll")
endif()
list(APPEND expected_sides "http:coring,nginx,h2o")
if(epoll_rows)
  list(APPEND expected_sides "http-epoll-backend:coring,nginx,h2o")
endif()
list(APPEND expected_sides
     "http-static-1k:coring,nginx"
     "http-static-10m:coring,nginx"
     "https:coring,nginx"
     "https-handshake:coring,nginx"
     "file-randread:coring,fio"
     "idle:coring,epoll"
     "fairness-echo:coring,epoll"
     "fairness-http:coring,nginx")
foreach(entry IN LISTS expected_sides)
  string(REPLACE ":" ";" parts "${entry}")
  list(GET parts 0 name)
  string(REGEX MATCH "\n${name} \\([^)]*\\) +[a-z]" row "${out}")
  require("row" "the table has no row for ${name}")
endforeach()

# --- the JSON -------------------------------------------------------------------------------
string(JSON schema ERROR_VARIABLE json_error GET "${results}" schema)
require("NOT json_error" "the JSON does not parse: ${json_error}")
require("schema STREQUAL coring-bench-all/1" "unexpected schema '${schema}'")
foreach(key kernel cpus compiler commit)
  string(JSON value GET "${results}" machine ${key})
  require("NOT value STREQUAL \"\"" "machine.${key} is empty")
endforeach()
string(JSON reps GET "${results}" options reps)

string(JSON count LENGTH "${results}" benchmarks)
list(LENGTH expected_sides want)
require("count EQUAL want" "${count} benchmarks in the JSON, want ${want}")
set(index 0)
foreach(entry IN LISTS expected_sides)
  string(REPLACE ":" ";" parts "${entry}")
  list(GET parts 0 name)
  list(GET parts 1 sides)
  string(REPLACE "," ";" sides "${sides}")
  string(JSON got GET "${results}" benchmarks ${index} name)
  require("got STREQUAL name" "benchmark ${index} is '${got}', want '${name}'")
  string(JSON error_type TYPE "${results}" benchmarks ${index} error)
  require("error_type STREQUAL NULL" "${name} has an error")
  string(JSON row_backend GET "${results}" benchmarks ${index} backend)
  set(want_backend "${backend}")
  if(name MATCHES "-epoll-backend$")
    set(want_backend epoll)
  endif()
  require("row_backend STREQUAL want_backend"
          "${name} ran on the backend '${row_backend}', want '${want_backend}'")
  string(JSON metrics LENGTH "${results}" benchmarks ${index} metrics)
  require("metrics EQUAL 2" "${name} has ${metrics} metrics, want 2")
  set(side_index 0)
  foreach(side IN LISTS sides)
    string(JSON got GET "${results}" benchmarks ${index} sides ${side_index} name)
    require("got STREQUAL side" "${name}: side ${side_index} is '${got}', want '${side}'")
    string(JSON skipped GET "${results}" benchmarks ${index} sides ${side_index} skipped)
    if(skipped)
      string(JSON reason GET "${results}" benchmarks ${index} sides ${side_index} reason)
      require("NOT reason STREQUAL \"\"" "${name} ${side}: skipped without a reason")
      string(FIND "${out}" "${name} ${side}: ${reason}" at)
      require("at GREATER -1" "${name} ${side}: no 'skipped' line under the table")
    else()
      foreach(metric 0 1)
        string(JSON metric_name GET "${results}" benchmarks ${index} metrics ${metric} name)
        string(JSON runs LENGTH "${results}" benchmarks ${index} sides ${side_index} values
               ${metric_name})
        require("runs EQUAL reps" "${name} ${side}: ${runs} values of ${metric_name}, want ${reps}")
        string(JSON median_type TYPE "${results}" benchmarks ${index} sides ${side_index} median
               ${metric_name})
        require("median_type STREQUAL NUMBER" "${name} ${side}: median of ${metric_name} is no number")
      endforeach()
    endif()
    math(EXPR side_index "${side_index} + 1")
  endforeach()
  string(JSON side_count LENGTH "${results}" benchmarks ${index} sides)
  require("side_count EQUAL side_index" "${name}: ${side_count} sides, want ${side_index}")
  math(EXPR index "${index} + 1")
endforeach()

# --- the chart ------------------------------------------------------------------------------
string(JSON chart_type TYPE "${results}" chart)
if(chart_type STREQUAL "STRING")
  string(JSON chart GET "${results}" chart)
  require("EXISTS ${chart}" "the JSON names a chart that does not exist: ${chart}")
  file(READ "${chart}" magic LIMIT 8 HEX)
  require("magic STREQUAL 89504e470d0a1a0a" "${chart} is not a PNG")
else()
  string(JSON note GET "${results}" chart_note)
  require("NOT note STREQUAL \"\"" "no chart, and no note saying why")
endif()

# --- with the external peers absent ---------------------------------------------------------
if(MODE STREQUAL "absent")
  set(cells "http coring" "http nginx" "http h2o" "http-static-1k coring" "http-static-1k nginx"
            "http-static-10m coring" "http-static-10m nginx" "https coring" "https nginx"
            "https-handshake coring" "https-handshake nginx" "file-randread fio"
            "fairness-http nginx")
  if(epoll_rows)
    list(APPEND cells "http-epoll-backend coring" "http-epoll-backend nginx"
         "http-epoll-backend h2o")
  endif()
  foreach(cell IN LISTS cells)
    string(REPLACE " " ";" cell_parts "${cell}")
    list(GET cell_parts 0 bench)
    list(GET cell_parts 1 side)
    string(REGEX MATCH "\n  ${bench} ${side}: [^\n]*to add it: apt-get install -y [a-z]" line "${out}")
    require("line" "${cell}: not skipped with an apt-get line")
  endforeach()
  require("chart_type STREQUAL NULL" "a chart without gnuplot")
  string(FIND "${note}" "gnuplot" at)
  require("at GREATER -1" "the chart note does not name gnuplot: ${note}")
endif()
