// tunefleet's service users: one per service, readWrite on tunefleet's database and nothing
// else (no admin database, no user management, no other database); and the readers (the
// dashboard), read on it and nothing else. Creates each user or updates its password and
// roles, so it runs at every start and after a password change.
//
// Run by the in-cluster mongod's postStart hook (components/mongodb) as the root user, and by
// hand against a managed MongoDB or a replica set of your own (docs/deploy.md):
//   TUNEFLEET_MONGODB_ADMIN_URL=mongodb+srv://admin:...@host/ mongosh --nodb --file users.js
// with TUNEFLEET_MONGODB_USERS, TUNEFLEET_MONGODB_READERS (optional) and MONGODB_DATABASE
// from the env file `make k8s-credentials`
// writes (k8s/components/mongodb/credentials/mongodb.env).
const env = process.env;
const database = env.MONGODB_DATABASE;
function pairs(list) {
  return (list || '')
    .split(',')
    .filter((pair) => pair.includes('='))
    .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]);
}
const users = pairs(env.TUNEFLEET_MONGODB_USERS);
const readers = pairs(env.TUNEFLEET_MONGODB_READERS);
if (!database || users.length === 0) {
  throw new Error('users.js needs MONGODB_DATABASE and TUNEFLEET_MONGODB_USERS (user=password,...)');
}
const url =
  env.TUNEFLEET_MONGODB_ADMIN_URL ||
  'mongodb://' +
    encodeURIComponent(env.MONGO_INITDB_ROOT_USERNAME) +
    ':' +
    encodeURIComponent(env.MONGO_INITDB_ROOT_PASSWORD) +
    '@127.0.0.1:27017/admin?authSource=admin&serverSelectionTimeoutMS=5000';
const admin = connect(url).getSiblingDB('admin');
// FerretDB, the MongoDB-protocol server that stands in for mongod where the mongo image cannot
// be pulled (docs/deploy.md), has users but no roles: it refuses any `roles` but the default
// with 'support for field "roles" ... is not implemented yet'. There the users are made
// without roles (each may use every database) and the script says so; any other error stops it.
let rolesRefused = false;
function save(user, pwd, roles) {
  if (admin.getUser(user) === null) {
    admin.createUser(roles === null ? { user: user, pwd: pwd, roles: [] } : { user: user, pwd: pwd, roles: roles });
  } else {
    admin.updateUser(user, roles === null ? { pwd: pwd } : { pwd: pwd, roles: roles });
  }
}
const accounts = users
  .map(([user, pwd]) => [user, pwd, 'readWrite'])
  .concat(readers.map(([user, pwd]) => [user, pwd, 'read']));
for (const [user, pwd, role] of accounts) {
  const roles = [{ role: role, db: database }];
  try {
    save(user, pwd, rolesRefused ? null : roles);
  } catch (error) {
    if (rolesRefused || !/support for field "roles"/.test(String(error && error.message))) {
      throw error;
    }
    rolesRefused = true;
    save(user, pwd, null);
  }
}
print(
  'tunefleet users: ' +
    accounts.map((u) => u[0] + ' (' + u[2] + ')').join(', ') +
    (rolesRefused
      ? '; this server has no roles: each may use every database'
      : ' on ' + database),
);
