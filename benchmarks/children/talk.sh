#!/bin/sh
# A service with something in its log: prints "$1" numbered lines, then idles as `sleep`.
# Run by every supervisor in the client-command workload, so that `logs -n 5` (and each
# peer's equivalent) has lines to show.
i=1
while [ "$i" -le "$1" ]; do
  echo "line $i of $1"
  i=$((i + 1))
done
exec sleep 3600
