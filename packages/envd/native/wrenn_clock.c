/*
 * setClock(ms): clock_settime(CLOCK_REALTIME) from inside envd. A restored guest's clock
 * is behind by the time it spent paused; spawning `date -s` to fix it costs a fork of the
 * whole Node process, 0.3-1.7 s under TCG, on every create and resume. This is one syscall.
 * Plain C against Node-API (ABI-stable): no libstdc++, loads in any Node >= 12.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <node_api.h>

static napi_value set_clock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double ms = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_double(env, argv[0], &ms) != napi_ok || !(ms > 0)) {
    napi_throw_type_error(env, NULL, "setClock(ms): ms must be a positive number");
    return NULL;
  }
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
  if (clock_settime(CLOCK_REALTIME, &ts) != 0) {
    char msg[128];
    strcpy(msg, "clock_settime: ");
    strncat(msg, strerror(errno), sizeof msg - strlen(msg) - 1);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "setClock", NAPI_AUTO_LENGTH, set_clock, NULL, &fn) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "setClock", fn) != napi_ok) return NULL;
  return exports;
}
