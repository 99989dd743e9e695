import { routeUrl } from './routes.js';

export { serializeFile } from '../core/serializer.js';

/** Where a file's record lives (the `Location` of a new upload). */
export const fileUrl = (id: string, base: string): string => routeUrl(base, 'getFile', { id });
