// kubestorage server (npm start): the embedded all-in-one server. The S3 gateway and the
// directory are not built yet (issues 3 and 5); until then this runs the store node on
// its embedded defaults, with data under ./data.
import { main as store } from './store.ts';

export async function main(argv: string[]): Promise<void> {
  process.stderr.write(
    'kubestorage server: the S3 gateway is not built yet; starting the store node on ./data/store\n',
  );
  await store(argv);
}
