import type { ProviderKind } from '../config.js';
import { aivideoapi } from './aivideoapi.js';
import { startKindEmulator, type Emulator, type EmulatorOptions, type KindDefinition } from './emulator.js';
import { openaiVideos } from './openai-videos.js';
import { toapis } from './toapis.js';
import { videoGenerations } from './video-generations.js';

export type { CallbackRecord, EmulatedTask, Emulator, EmulatorBehaviour, EmulatorOptions } from './emulator.js';
export { signToapis } from './toapis.js';
export { signStandardWebhook } from './openai-videos.js';

const kinds: Record<ProviderKind, KindDefinition> = {
  aivideoapi,
  toapis,
  'video-generations': videoGenerations,
  'openai-videos': openaiVideos,
};

/** A loopback server on 127.0.0.1 (a free port) that behaves like the provider kind's seed documents. */
export function startEmulator(kind: ProviderKind, options?: EmulatorOptions): Promise<Emulator> {
  return startKindEmulator(kinds[kind], options);
}
