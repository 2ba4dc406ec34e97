# mk/local.mk: the local loop beyond `make demo` (issue 4).
#   lambda-invoke   the real Lambda runtime locally: `cargo lambda watch` on 127.0.0.1 and
#                   `cargo lambda invoke --data-file events/new-message.json` against its own DynamoDB Local,
#                   each on a free port (LAMBDA_INVOKE_PORT, LAMBDA_INVOKE_DDB_PORT to choose them).
# Not part of `make test`: it installs cargo-lambda from PyPI (with zig) and builds through it.

LAMBDA_INVOKE_VENV ?= .venv-package
LAMBDA_INVOKE_CARGO_LAMBDA_VERSION ?= 1.9.2
LAMBDA_INVOKE_PORT ?=
LAMBDA_INVOKE_DDB_PORT ?=
LAMBDA_INVOKE_CARGO_LAMBDA := $(LAMBDA_INVOKE_VENV)/bin/cargo-lambda

.PHONY: lambda-invoke lambda-invoke-tools
lambda-invoke-tools:
	@$(LAMBDA_INVOKE_CARGO_LAMBDA) lambda --version 2>/dev/null | grep -q ' $(LAMBDA_INVOKE_CARGO_LAMBDA_VERSION) ' || { \
	  python3 -m venv $(LAMBDA_INVOKE_VENV) && \
	  $(LAMBDA_INVOKE_VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==$(LAMBDA_INVOKE_CARGO_LAMBDA_VERSION); }

lambda-invoke: dynamodb-local-fetch build lambda-invoke-tools ## The Lambda runtime locally: cargo lambda watch + invoke on DynamoDB Local
	CARGO_LAMBDA=$(abspath $(LAMBDA_INVOKE_CARGO_LAMBDA)) DDB_PORT=$(LAMBDA_INVOKE_DDB_PORT) \
	  INVOKE_PORT=$(LAMBDA_INVOKE_PORT) scripts/lambda-invoke.sh
