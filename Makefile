# procq: build with PGXS against PostgreSQL 15.
#
#   make demo    install what is missing, build, run the workflow demo
#   make test    install what is missing, build, run the whole test suite
#   make stress  install what is missing (and the stress tools), build, run
#                the long proofs: test/stress/*.sh (scripts/stress.sh)
#   make test-asan  the whole suite against an ASan+UBSan build of procq in a
#                private copy of PostgreSQL (test/stress/40_asan.sh)
#   make bench   install what is missing (and node), build, run the benchmark:
#                procq beside its peers and floors, one table (bench/run.sh)
#
# The plain PGXS targets (all, install, installcheck) work as usual once the
# server development package is installed (make deps).

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config

EXTENSION  = procq
MODULE_big = procq
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA       = $(wildcard sql/procq--*.sql)
PGFILEDESC = "procq - dependency-aware job queue"

# pg_regress: test/sql/<name>.sql is run and compared with test/expected/<name>.out.
REGRESS      = $(sort $(basename $(notdir $(wildcard test/sql/*.sql))))
REGRESS_OPTS = --inputdir=test
# Isolation specs: test/isolation/specs/<name>.spec, expected/<name>.out there.
ISOLATION      = $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation

PG_CFLAGS = -std=gnu99 -Wall -Wextra -Werror -Wno-unused-parameter \
            -Wno-missing-field-initializers -Wno-sign-compare

.DEFAULT_GOAL := all

ifneq ($(wildcard $(PG_CONFIG)),)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
else
all install installcheck:
	@echo "PostgreSQL 15 development files are missing: run 'make deps' (or make test / make demo)." >&2
	@exit 1
endif

# PGXS does not track header dependencies.
$(OBJS): $(wildcard src/*.h)

.PHONY: deps test demo bench stress test-asan

deps:
	@scripts/deps.sh

test: deps
	$(MAKE) all
	$(MAKE) install
	scripts/run-tests.sh

demo: deps
	$(MAKE) all
	$(MAKE) install
	scripts/demo.sh

stress:
	@scripts/deps.sh stress
	$(MAKE) all
	$(MAKE) install
	scripts/stress.sh

test-asan:
	@scripts/deps.sh
	test/stress/40_asan.sh

bench:
	@scripts/deps.sh bench
	$(MAKE) all
	$(MAKE) install
	bench/run.sh

EXTRA_CLEAN = results regression.diffs regression.out output_iso tmp_check
