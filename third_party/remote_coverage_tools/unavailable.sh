#!/bin/sh
echo "coverage tools are not available in dsim's offline build" >&2
exit 1
