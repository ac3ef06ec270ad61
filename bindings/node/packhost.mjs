/**
 * packhost for Node as an ES module: the same classes as `packhost.js`, re-exported by name,
 * so `import { Pack } from 'packhost'` and `require('packhost')` share one implementation.
 */
import packhost from './packhost.js'

export const {
  Pack,
  CallResult,
  Flow,
  PackError,
  InvalidPackError,
  InvalidManifestError,
  InvalidOptionsError,
  UntrustedPackError,
  ActionNotFoundError,
  TimeoutError,
  OutOfFuelError,
  CancelledError,
  MemoryLimitError,
  InputTooLargeError,
  OutputTooLargeError,
  HostDeniedError,
  TrapError,
  PluginError,
  HostFunctionError,
  QuotaExceededError,
  IoError,
  InternalError,
  ERROR_CLASSES,
  ERROR_CODES,
  buildInfo,
  push,
  pull,
} = packhost

export default packhost
