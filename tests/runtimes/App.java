// A JDBC application that knows nothing of ua-autotag, for tests/runtimes/test_java.py.
//   java -cp postgresql.jar:<dir> App driver|datasource|datasource-url <url> <name or ->
//   java -cp <dir> App resource
// driver: DriverManager (ApplicationName, if given, in Properties; the URL may carry its
// own); datasource: PGSimpleDataSource set up with setServerNames/setPortNumbers/
// setDatabaseName (host, port, database taken from the URL); datasource-url: the same
// with setURL; resource: the driverconfig.properties the class loader sees, as
// Properties reads it (UTF-16 code units in hex). Prints key=value lines.
import java.io.InputStream;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

public class App {
    static final String SQL =
        "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()";

    public static void main(String[] args) throws Exception {
        System.out.println("ua.test.foo=" + System.getProperty("ua.test.foo"));
        System.out.println("ua.test.bar=" + System.getProperty("ua.test.bar"));
        if (args[0].equals("resource")) {
            Properties p = new Properties();
            try (InputStream in = ClassLoader.getSystemResourceAsStream(
                    "org/postgresql/driverconfig.properties")) {
                if (in != null) p.load(in);
            }
            String v = p.getProperty("ApplicationName");
            StringBuilder hex = new StringBuilder();
            if (v != null) for (char c : v.toCharArray()) hex.append(String.format("%04x", (int) c));
            System.out.println("resource=" + (v == null ? "-" : hex));
            return;
        }
        String url = args[1];
        String name = args[2].equals("-") ? null : args[2];
        String user = System.getenv("APP_PGUSER");
        Connection c;
        if (args[0].startsWith("datasource")) {
            org.postgresql.ds.PGSimpleDataSource ds = new org.postgresql.ds.PGSimpleDataSource();
            if (args[0].equals("datasource-url")) {
                ds.setURL(url);
            } else {
                java.net.URI u = new java.net.URI(url.substring("jdbc:".length()));
                ds.setServerNames(new String[] {u.getHost()});
                ds.setPortNumbers(new int[] {u.getPort()});
                ds.setDatabaseName(u.getPath().substring(1));
            }
            ds.setUser(user);
            if (name != null) ds.setApplicationName(name);
            c = ds.getConnection();
        } else {
            Properties props = new Properties();
            props.setProperty("user", user);
            if (name != null) props.setProperty("ApplicationName", name);
            c = DriverManager.getConnection(url, props);
        }
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(SQL)) {
            r.next();
            System.out.println("application_name=" + r.getString(1));
        } finally {
            c.close();
        }
    }
}
