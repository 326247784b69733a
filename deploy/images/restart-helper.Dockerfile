# A stand-in for tiltdev/restart-helper (Docker Hub) where it cannot be pulled: the two files the
# Tiltfile copies from it into each service image. /tilt-restart-wrapper takes the options of
# Tilt's rerun-process-wrapper and runs the command under /entr, which reruns it whenever
# --watch_file is written. Both are sh scripts (deploy/images/entr does what entr's -r and -z
# do: Debian's entr needs libbsd, which the service images do not have).
FROM scratch
COPY tilt-restart-wrapper entr /
